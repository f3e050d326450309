"""Serving modes (colocated / split), the Ray ingress setting, the start-up placeholder, and a
real `recsys serve` started and restarted under load: no 404 for a route that exists."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from serving.settings import Settings
from tests.utils.http import auth

pytest.importorskip("ray")


def test_serving_mode_auto_is_colocated_without_a_gpu(monkeypatch):
    import serving.deployments as deployments

    monkeypatch.setattr(deployments, "cuda_available", lambda: False)
    assert deployments.serving_mode(Settings()) == "colocated"
    assert deployments.serving_mode(Settings(serving_mode="split")) == "split"
    monkeypatch.setattr(deployments, "cuda_available", lambda: True)
    assert deployments.serving_mode(Settings()) == "split"
    assert deployments.serving_mode(Settings(device="cpu")) == "colocated"
    assert deployments.serving_mode(Settings(serving_mode="colocated")) == "colocated"


def test_bad_modes_name_the_field():
    with pytest.raises(ValidationError, match="serving_mode"):
        Settings(serving_mode="both")
    with pytest.raises(ValidationError, match="ray_ingress"):
        Settings(ray_ingress="nginx")


def test_ray_environment_per_ingress(monkeypatch, tmp_path):
    import typer

    import serving.cli_serve as cli_serve

    proxy = cli_serve.ray_environment(Settings(ray_ingress="proxy", var_dir=str(tmp_path)))
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in proxy
    assert proxy["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    plain = Settings(ray_ingress="proxy", ray_throughput_optimized=False)
    assert "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in cli_serve.ray_environment(plain)

    if cli_serve.haproxy_binary():
        env = cli_serve.ray_environment(Settings(port=8123, var_dir=str(tmp_path)))
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert env["RAY_SERVE_HAPROXY_STATS_PORT"] != env["RAY_SERVE_HAPROXY_METRICS_PORT"]
        # Ray adds a 40-character session directory; HAProxy refuses sockets over 97 bytes
        for name in ("RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"):
            assert len(env[name]) + 41 <= 97, env[name]
    monkeypatch.setattr(cli_serve, "haproxy_binary", lambda: None)
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in cli_serve.ray_environment(Settings())
    with pytest.raises(typer.BadParameter, match="RECSYS_RAY_INGRESS=haproxy"):
        cli_serve.ray_environment(Settings(ray_ingress="haproxy"))


def test_haproxy_wrapper_turns_rays_404_for_no_application_into_503(tmp_path):
    """The executable `recsys serve` gives Ray as its HAProxy binary rewrites the one line of
    Ray's own config template (the installed Ray's) and runs the real binary with the same
    arguments."""
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    from serving import haproxy_wrapper
    from serving.starting import RETRY_AFTER_S

    assert haproxy_wrapper.RETRY_AFTER_S == RETRY_AFTER_S
    not_found = [line for line in HAPROXY_CONFIG_TEMPLATE.splitlines() if "status 404" in line]
    assert len(not_found) == 1, not_found  # Ray's default_backend: the line the wrapper changes
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"backend default_backend\n{not_found[0]}\nbackend app\n    server a x\n")
    real = tmp_path / "real-haproxy"
    real.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'args'}\n")
    real.chmod(0o755)
    wrapper = haproxy_wrapper.install(tmp_path, str(real))
    subprocess.run([wrapper, "-db", "-f", str(config), "-sf", "123"], check=True, timeout=30)
    assert (tmp_path / "args").read_text().split() == ["-db", "-f", str(config), "-sf", "123"]
    lines = config.read_text().splitlines()
    assert lines[0] == "backend default_backend" and lines[2:] == ["backend app", "    server a x"]
    assert lines[1] == "    " + haproxy_wrapper.STARTING
    assert "status 503" in lines[1] and f"hdr Retry-After {RETRY_AFTER_S}" in lines[1]
    # the real HAProxy accepts the rewritten line
    from serving.cli_serve import haproxy_binary

    binary = haproxy_binary()
    if binary:
        check = tmp_path / "check.cfg"
        check.write_text(
            "defaults\n    mode http\n    timeout client 1s\n    timeout server 1s\n"
            "    timeout connect 1s\nfrontend f\n    bind 127.0.0.1:18999\n"
            f"    default_backend default_backend\n{lines[0]}\n{lines[1]}\n"
        )
        done = subprocess.run([binary, "-c", "-f", str(check)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_haproxy_wrapper_falls_back_to_the_real_binary_where_it_cannot_run(tmp_path, monkeypatch):
    from serving import haproxy_wrapper

    monkeypatch.setattr(haproxy_wrapper.os, "access", lambda *_: False)  # a noexec mount
    assert haproxy_wrapper.install(tmp_path, "/usr/sbin/haproxy") == "/usr/sbin/haproxy"


def test_starting_placeholder_answers_503_with_retry_after():
    from starlette.requests import Request

    from serving.starting import RETRY_AFTER_S, StartingApp

    app = StartingApp.func_or_class()

    def call(path: str):
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
        return asyncio.run(app(Request(scope)))

    busy = call("/v1/users/u1/recommendations")
    assert busy.status_code == 503 and busy.headers["retry-after"] == str(RETRY_AFTER_S)
    assert b"starting" in busy.body
    assert call("/readyz").status_code == 503
    assert call("/healthz").status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Hammer:
    """Three clients asking for recommendations in a loop; counts every answer's status.

    A 404 before the placeholder first answers in a start (``held`` unset) is Ray's own
    route-less window between the port opening and the first route (README: what is left);
    any later 404 counts as ``late_404``.
    """

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.held = False
        self.early_404 = self.late_404 = 0
        self.counts: collections.Counter = collections.Counter()
        self.samples: dict = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(3)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, headers=auth(self.key), timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/v1/users/u0003/recommendations?k=5")
                    code = response.status_code
                    if code == 503:
                        assert response.headers.get("retry-after"), response.text
                    if code in (200, 503):
                        self.held = True
                    elif code == 404:
                        self.late_404 += self.held
                        self.early_404 += not self.held
                    self.samples.setdefault(code, response.text[:200])
                except httpx.TransportError:  # not listening yet / gone: a client retries
                    code = "no connection"
                    time.sleep(0.05)
                self.counts[code] += 1

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _start(env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from recsys_cli.main import main; main()", "serve"]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def _wait_ready(proc: subprocess.Popen, base: str, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout}s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(1)


@pytest.mark.slow
def test_recsys_serve_restart_under_load_answers_503_not_404(tmp_path, bundle_dir):
    """`recsys serve` (the default modes), then a restart, with clients asking throughout:
    once the placeholder holds the route, no 404 through start-up, shutdown and restart; with
    the HAProxy ingress, none before it either (:mod:`serving.haproxy_wrapper`)."""
    from recsys.store import Store

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path / 'recsys.db'}"
    store = Store.open(database)
    key, _ = store.keys.create("admin", "restart test")
    store.close()
    env = dict(os.environ, RECSYS_PORT=str(port), RECSYS_DATABASE_URL=database,
               RECSYS_VAR_DIR=str(tmp_path / "var"), RECSYS_MODEL_URI=str(bundle_dir),
               RECSYS_REPLICA_NUM_CPUS="0.25", RAY_AUTH_MODE="disabled")  # fmt: skip
    log = tmp_path / "serve.log"
    with _Hammer(base, key) as hammer:
        for _ in range(2):  # start, then restart
            hammer.held = False
            proc = _start(env, log)
            try:
                _wait_ready(proc, base, log)
                answered = hammer.counts[200]
                deadline = time.monotonic() + 30
                while hammer.counts[200] < answered + 20 and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                _stop(proc)
    counts = dict(hammer.counts)
    print(f"status counts {counts}; 404 before the first route {hammer.early_404}")
    assert counts.get(200, 0) >= 40, (counts, hammer.samples)
    assert counts.get(503, 0) > 0  # the placeholder answered while the app started
    assert hammer.late_404 == 0, (counts, hammer.samples)
    assert set(counts) <= {200, 503, 404, "no connection"}, (counts, hammer.samples)
    from serving.cli_serve import haproxy_binary

    if haproxy_binary():  # the default ingress where HAProxy exists: not even before the route
        assert hammer.early_404 == 0, (counts, hammer.samples)
