"""benchmarks/load.py without Ray: the load generator, the plain server and the comparison."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.utils.factories import make_bundle, make_shop

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "load.py"


def load_script():
    spec = importlib.util.spec_from_file_location("load_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    shop = make_shop(tmp_path_factory.mktemp("shop") / "shop", users=120, items=60)
    return make_bundle(shop, tmp_path_factory.mktemp("bundle") / "bundle", epochs=1)


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    """A plain server started the way load.py starts one (and stopped afterwards)."""
    load_script()
    from load_servers import free_port, served

    scratch = tmp_path_factory.mktemp("server")
    settings = {"model_uri": str(bundle), "database_url": f"sqlite:///{scratch / 'a.db'}",
                "var_dir": str(scratch / "var")}  # fmt: skip
    with served("plain", free_port(), settings, None, ready_timeout=180) as service:
        yield service
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(service.base_url.rsplit(":", 1)[1]))) != 0


def test_compare_plain_against_a_running_server(bundle, server, capsys):
    load = load_script()
    # the fixture's plain server stands in for the Ray Serve side; load.py starts the other
    args = ["--compare-plain", "--base-url", server.base_url, "--key", server.key]
    args += ["--model-uri", str(bundle), "--requests", "12", "--warmup", "0"]
    args += ["--concurrency", "1,2", "--clients", "2", "--batch", "5"]
    code = load.main(args)
    out = capsys.readouterr().out
    comparison = json.loads(out.strip().splitlines()[-1])  # the comparison is printed last
    assert code == 0 and comparison["errors"] == {"ray": 0, "plain": 0}, out[-4000:]
    for side in ("ray", "plain"):
        figures = comparison[side]
        assert set(figures) == {"healthz", "recommendations", "events"}
        assert set(figures["recommendations"]) == {"c1", "c2"}
        for row in (*figures["healthz"].values(), *figures["recommendations"].values()):
            assert row["rps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] and row["errors"] == 0
        assert figures["events"]["c4"]["events_per_s"] > 0
    # the server started for the run is measured down to its CPU; the given one only by HTTP
    assert comparison["plain"]["recommendations"]["c2"]["server_cpu_ms_per_request"] > 0
    assert comparison["ray"]["recommendations"]["c2"]["server_cpu_ms_per_request"] is None
    assert comparison["ready_seconds"]["plain"] > 0
    ratio = comparison["ratio_ray_over_plain"]["recommendations"]["c2"]["rps"]
    assert ratio > 0 and comparison["ratio_rps_recommendations_c2"] == ratio


def test_the_load_is_split_over_client_processes(bundle, server):
    load_script()
    from loadgen import LoadGenerator

    users = [str(u) for u in np.load(bundle / "user_ids.npy", allow_pickle=True)]
    with LoadGenerator(server.base_url, server.key, users, ["x"], clients=3) as gen:
        phase = gen.phase("recommendations", concurrency=2, requests=7)
    with LoadGenerator(server.base_url, "rk_wrong_key_0123456789", users, ["x"]) as bad:
        refused = bad.phase("recommendations", concurrency=1, requests=2)
    summary = phase.summary()
    # two workers -> two of the three processes; the budget of 7 requests is shared exactly
    assert summary["client_processes"] == 2 and summary["requests"] == 7
    assert summary["client_cpu_s"] > 0 and summary["errors"] == 0, summary
    assert refused.errors == 2 and "401" in refused.error_samples[0]


def test_bad_arguments(capsys):
    load = load_script()
    with pytest.raises(SystemExit):
        load.main(["--serve", "--serve-plain"])
    assert "pick one" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load.main(["--base-url", "http://127.0.0.1:1"])
    assert "--key" in capsys.readouterr().err
