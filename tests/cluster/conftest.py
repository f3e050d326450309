"""A real two-node Ray cluster on this machine with the service deployed on it.

``deploy/local_cluster.sh`` starts a head (``{"head": 1}``, label ``recsys-node=head``) and a
second node (``{"worker_node": 1}``, ``recsys-node=worker``), each with its own temp dir and
ports, and serves ``configs/serve.yaml`` there (split mode, model replicas preferring the
second node, ingress the head) over a small local bundle and a SQLite store. The same helpers
drive ``benchmarks/cluster_failover.py``. The cluster is stopped (both nodes, by their own
processes only) whatever the tests do.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils.factories import make_bundle, make_shop

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    """benchmarks/cluster_failover.py as a module (it puts benchmarks/ on sys.path for the
    load tool it imports)."""
    name = "cluster_failover"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class Deployed:
    """The cluster, the load tool's client process (forked before the Ray driver started) and
    what a request needs."""

    cluster: object  # cluster_failover.LocalCluster
    generator: object  # loadgen.LoadGenerator
    key: str
    users: list[str]
    items: list[str]
    settings: dict


@pytest.fixture(scope="session")
def bench():
    """benchmarks/cluster_failover.py: the cluster driver and the measurements."""
    return load_benchmark()


@pytest.fixture(scope="module")
def cluster_bundle(tmp_path_factory) -> Path:
    shop = make_shop(tmp_path_factory.mktemp("shop") / "shop", users=200, items=100)
    return make_bundle(shop, tmp_path_factory.mktemp("bundle") / "bundle", epochs=1)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, cluster_bundle, bench):
    pytest.importorskip("ray")
    from loadgen import LoadGenerator

    root = tmp_path_factory.mktemp("cluster")
    # The quick autoscaling config: 1..2 model replicas, 1 s up, 3 s down.
    settings = bench.service_args(root, cluster_bundle, **bench.QUICK_AUTOSCALING)
    key = bench.admin_key(settings["database_url"])
    users, items = bench.bundle_ids(cluster_bundle)
    directory = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: Ray's socket paths
    cluster = bench.LocalCluster(directory)
    generator = None
    try:
        cluster.up()
        cluster.deploy(settings)
        generator = LoadGenerator(cluster.base_url, key, users, items, clients=1)
        cluster.connect()  # after the generator's fork: a forked Ray driver is unsafe
        cluster.wait_running()
        yield Deployed(cluster, generator, key, users, items, settings)
    finally:
        if generator is not None:
            generator.close()
        cluster.down()
        shutil.rmtree(directory, ignore_errors=True)
