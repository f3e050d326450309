"""Batch jobs as Ray jobs on a real two-node Ray cluster on this machine.

A head (``ray start --head``) and a second node (``ray start --address``), one logical CPU each,
on free ports with their own temp folders (Redis holds 6379 here); the jobs go in with
``ray job submit`` through the head's dashboard, as an operator would submit them:

* ``recsys segments refresh --shards 2``: the two shard tasks run one on each node, and the
  store ends with the memberships and entry/exit counts of an unsharded refresh of the same
  store (SQLite file on this machine, and PostgreSQL as a multi-machine cluster would use);
* ``recsys train --from-store``: registers a model version.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recsys.registry import CHAMPION, Registry
from recsys.segments.refresh import refresh
from recsys.store import Store
from recsys_cli.main import app
from tests.recsys.store.conftest import _postgres_schema
from tests.utils.factories import make_shop
from tests.utils.segment_state import fill_store, segment_state

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_start(args: list[str], temp: str) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group (GCS, raylet, agents, workers)."""
    command = [
        f"{BIN}/ray", "start", "--block", "--num-cpus=1", f"--temp-dir={temp}",
        "--object-store-memory=100000000", "--disable-usage-stats",
        f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-node Ray cluster; yields the dashboard address jobs are submitted to."""
    port, dashboard = _free_port(), _free_port()
    temps = [tempfile.mkdtemp(prefix=f"rayjobs-{n}-", dir="/tmp") for n in ("h", "w")]
    nodes = [
        _ray_start(
            [
                "--head",
                f"--port={port}",
                "--include-dashboard=true",
                f"--dashboard-port={dashboard}",
                "--dashboard-host=127.0.0.1",
                f"--ray-client-server-port={_free_port()}",
                "--node-ip-address=127.0.0.1",
            ],
            temps[0],
        )  # fmt: skip
    ]
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait(lambda: _alive_nodes(address) >= 1, nodes, "the head")
        nodes.append(
            _ray_start([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1"], temps[1])
        )
        _wait(lambda: _alive_nodes(address) == 2, nodes, "the second node")
        yield address
    finally:
        for node in reversed(nodes):  # the worker node first, then the head
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=60)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(address: str) -> int:
    try:
        answer = httpx.get(f"{address}/api/v0/nodes", timeout=5)
    except httpx.HTTPError:
        return 0
    if answer.status_code != 200:
        return 0
    nodes = answer.json()["data"]["result"]["result"]
    return sum(1 for node in nodes if node["state"] == "ALIVE")


def _wait(ready, nodes: list[subprocess.Popen], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert all(n.poll() is None for n in nodes), f"ray start exited while waiting for {what}"
        assert time.monotonic() < deadline, f"{what} did not join within {seconds}s"
        time.sleep(1)


def _submit(address: str, env: dict[str, str], *command: str) -> str:
    """``ray job submit`` (waits for the job); returns its output, or fails with it."""
    runtime_env = {"env_vars": {k: v for k, v in env.items() if k.startswith("RECSYS_")}}
    submit = [
        f"{BIN}/ray", "job", "submit", f"--address={address}",
        f"--runtime-env-json={json.dumps(runtime_env)}", "--", f"{BIN}/recsys", *command,
    ]  # fmt: skip
    done = subprocess.run(
        submit, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "succeeded" in done.stdout, shlex.join(submit) + "\n" + output
    return done.stdout


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return make_shop(tmp_path_factory.mktemp("rayjobs") / "shop", users=200, items=80)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_pair(request, tmp_path, shop) -> Iterator[tuple[str, Store, Store]]:
    """``(url of the job's store, the job's store, a twin refreshed in one pass here)``."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / f'{n}.db'}" for n in ("job", "twin")]
        stores = [Store.open(url) for url in urls]
        for store in stores:
            fill_store(store, shop)
        yield urls[0], *stores
        for store in stores:
            store.close()
        return
    with _postgres_schema() as job, _postgres_schema() as twin:
        # the job's processes reach the schema through the URL alone
        url = f"{job.url}?options=-csearch_path%3D{job.schema}"
        stores = [Store.open(url), Store.open(twin.url, connect_args=twin.connect_args)]
        for store in stores:
            fill_store(store, shop)
        yield url, *stores
        for store in stores:
            store.close()


def test_a_sharded_segment_refresh_runs_as_a_ray_job_on_both_nodes(cluster, store_pair):
    url, job_store, twin = store_pair
    output = _submit(
        cluster, {}, "segments", "refresh", "--shards", "2", "--no-clusters", "--json",
        "--database-url", url,
    )  # fmt: skip
    summary = next(
        json.loads(line) for line in output.splitlines() if line.startswith('{"customers"')
    )
    shards = summary["shards"]
    assert [s["shard"] for s in shards] == [0, 1]
    assert len({s["node"] for s in shards}) == 2, "one shard task on each node"
    assert sum(s["customers"] for s in shards) == summary["customers"] == 200
    one_pass = refresh(twin)
    assert summary["changes"] == one_pass["changes"] > 0
    members, events = segment_state(job_store)
    assert (members, events) == segment_state(twin)
    assert {s for s, _ in members} >= {"big-spenders", "viewers", "half"}


def test_training_runs_as_a_ray_job_and_registers_a_version(cluster, shop, tmp_path):
    url = f"sqlite:///{tmp_path / 'recsys.db'}"
    store = Store.open(url)
    fill_store(store, shop)
    store.close()
    config = tmp_path / "train.yaml"
    config.write_text(
        "seed: 7\ndevice: cpu\ndata: {interactions: unused.parquet}\n"
        "evaluation: {baselines: [pop]}\nmodel: {dim: 8, epochs: 2, tune: false}\n"
    )
    env = {
        "RECSYS_DATABASE_URL": url,
        "RECSYS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "RECSYS_VAR_DIR": str(tmp_path / "var"),
    }
    _submit(cluster, env, "train", "--config", str(config), "--from-store", "--no-progress")
    version = Registry(env["RECSYS_MLFLOW_TRACKING_URI"]).alias_version(CHAMPION)
    assert str(version.version) == "1"


def test_a_ray_address_without_shards_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["segments", "refresh", "--no-clusters", "--database-url", url]
    result = CliRunner().invoke(app, [*args, "--ray-address", "127.0.0.1:1"])
    assert str(result.exception) == "--ray-address: only used with --shards N (N > 1)"
