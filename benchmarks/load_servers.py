"""The servers ``load.py`` starts: ``recsys serve`` (Ray Serve) and the plain uvicorn process.

Both run as subprocesses in their own process group with a fresh admin key, are waited for
until ``/readyz`` answers 200, and are stopped (SIGTERM, then the group) on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PLAIN_SERVER = Path(__file__).resolve().with_name("plain_server.py")
UNCAPPED = "1000000/s"  # per-key rate of both servers' keys: far above what this load reaches
SETTING_FLAGS = {  # argparse dest -> RECSYS_* variable both servers read
    "model_uri": "MODEL_URI",
    "database_url": "DATABASE_URL",
    "var_dir": "VAR_DIR",
    "tracking_uri": "MLFLOW_TRACKING_URI",
}


@dataclass
class Service:
    """A server started for the run."""

    kind: str  # "ray" or "plain"
    base_url: str
    key: str
    proc: subprocess.Popen
    ready_seconds: float

    def cpu_seconds(self) -> float | None:
        """CPU seconds used so far by the server and every process below it (psutil)."""
        return tree_cpu_seconds(self.proc.pid)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and its descendants (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _recsys_command() -> list[str]:
    script = Path(sys.executable).with_name("recsys")
    if script.exists():
        return [str(script)]
    found = shutil.which("recsys")
    if found:
        return [found]
    return [sys.executable, "-c", "from recsys_cli.main import main; main()"]


@contextmanager
def served(kind: str, port: int, settings: dict, key: str | None, ready_timeout: float):
    """Start ``recsys serve`` (``kind="ray"``) or the plain server (``"plain"``) on ``port``.

    ``settings`` maps :data:`SETTING_FLAGS` names to values (None: the environment's).
    """
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken: pick a free one with --port")
    key = key or "rk_load_" + secrets.token_urlsafe(24)
    env = dict(os.environ)
    env.update({"RECSYS_ADMIN_KEY": key, "RECSYS_HOST": "127.0.0.1", "RECSYS_PORT": str(port),
                "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true"})  # fmt: skip
    env.setdefault("RAY_AUTH_MODE", "disabled")
    # The run measures serving, not the per-key rate limit: the admin key's default read rate
    # (200/s) would cap both servers and turn the difference into 429s. The Redis check stays
    # in every request's path; a rate set in the environment wins.
    env.setdefault("RECSYS_RATE_READ", json.dumps({"admin": UNCAPPED, "marketer": UNCAPPED,
                                                   "read": UNCAPPED, "ingest": UNCAPPED}))
    env.setdefault("RECSYS_RATE_INGEST", UNCAPPED)
    for flag, name in SETTING_FLAGS.items():
        if settings.get(flag):
            env[f"RECSYS_{name}"] = settings[flag]
    if kind == "ray":
        command = [*_recsys_command(), "serve"]
    else:
        command = [sys.executable, str(PLAIN_SERVER), "--port", str(port)]
    log = tempfile.NamedTemporaryFile("w+b", prefix=f"recsys-{kind}-", suffix=".log", delete=False)
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ray's helpers go down with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base, ready_timeout, log.name, kind)
        ready = time.perf_counter() - started
        print(f"{kind} server ready on {base} after {ready:.1f}s "
              f"(pid {proc.pid}, log {log.name})", file=sys.stderr)  # fmt: skip
        yield Service(kind, base, key, proc, round(ready, 2))
    finally:
        stop(proc, kind)
        log.close()


def _wait_ready(proc, base: str, timeout: float, log_path: str, kind: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log_path).read_text(errors="replace")[-3000:]
            raise SystemExit(f"{kind} server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{kind} server not ready after {timeout:.0f}s; its log: {log_path}")


def stop(proc, kind: str = "server") -> None:
    """SIGTERM (``recsys serve`` shuts Ray Serve down cleanly), then the group, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            print(f"{kind} server ignored SIGTERM for 90s; killing its group", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # helpers left in the group (Ray's), if any
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(2)
    if proc.poll() is None:
        proc.wait(timeout=10)
