"""Retraining on a schedule: the shipped cron line and a Ray job, each run for real.

Both train from the store (``--from-store``) into a throwaway MLflow registry; each must register
a version. The Ray case starts a real single-node Ray head (``ray start --head --block``, on free
ports: Redis holds 6379 here) and submits the job with ``ray job submit``.
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
from pathlib import Path

import httpx
import pytest

from recsys.data.loaders import load_events
from recsys.registry import CHAMPION, Registry
from recsys.store import Store

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CRON_FILE = ROOT / "deploy" / "cron" / "recsys-retrain.cron"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def collected(tiny_shop, tmp_path):
    """A store holding the tiny shop's events, and the service's environment pointing at it."""
    url = f"sqlite:///{tmp_path / 'recsys.db'}"
    store = Store.open(url)
    store.events.append(load_events(tiny_shop / "events.parquet"))
    store.close()
    config = tmp_path / "train.yaml"
    config.write_text(
        "seed: 7\ndevice: cpu\ndata: {interactions: unused.parquet}\n"
        "evaluation: {baselines: [pop]}\nmodel: {dim: 8, epochs: 2, tune: false}\n"
    )
    env = {
        **os.environ,
        "RECSYS_DATABASE_URL": url,
        "RECSYS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return config, env


def _registered(env: dict) -> str:
    return str(Registry(env["RECSYS_MLFLOW_TRACKING_URI"]).alias_version(CHAMPION).version)


def test_the_shipped_cron_line_retrains_from_the_store(collected, tmp_path):
    config, env = collected
    lines = [ln for ln in CRON_FILE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert len(fields) == 6, "five schedule fields and a command"
    command = (
        fields[5]
        .replace("/srv/recsys/var/", f"{tmp_path}/")
        .replace("/srv/recsys/.venv/bin/", f"{BIN}/")
        .replace("/srv/recsys/configs/train.yaml", str(config))
    )
    assert "--from-store" in command
    subprocess.run(["bash", "-c", command], env=env, cwd=tmp_path, check=True, timeout=600)
    assert _registered(env) == "1"
    assert "promoted" in (tmp_path / "retrain.log").read_text()


def test_a_ray_job_retrains_from_the_store(collected, tmp_path):
    config, env = collected
    port, dashboard = _free_port(), _free_port()
    env = {**env, "RAY_AUTH_MODE": "disabled"}
    temp = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # Ray's socket paths must be short
    head = subprocess.Popen(
        [f"{BIN}/ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=true", f"--dashboard-port={dashboard}",
         "--dashboard-host=127.0.0.1", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{address}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert head.poll() is None, "ray start --head exited"
            time.sleep(1)
        runtime_env = {"env_vars": {k: env[k] for k in env if k.startswith("RECSYS_")}}
        submit = [
            f"{BIN}/ray", "job", "submit", f"--address={address}",
            f"--runtime-env-json={json.dumps(runtime_env)}", "--",
            f"{BIN}/recsys", "train", "--config", str(config), "--from-store", "--no-progress",
        ]  # fmt: skip
        done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, shlex.join(submit) + "\n" + done.stdout + done.stderr
        assert "succeeded" in done.stdout
        assert _registered(env) == "1"
    finally:  # the whole head (GCS, raylet, dashboard, workers) is this process group
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
