"""`recsys serve` refuses what it cannot do at once, with one line and before starting Ray."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from recsys.device import cuda_available


def _recsys(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recsys_cli.main", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def held_port():
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_fails_at_once_with_one_line(held_port, tmp_path):
    started = time.perf_counter()
    result = _recsys("serve", "--port", str(held_port), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"127.0.0.1:{held_port}" in line and "--port" in line
    assert time.perf_counter() - started < 20
    assert not (tmp_path / "var").exists()  # nothing was written: no store, no key


def test_a_port_served_with_reuseport_is_still_taken(tmp_path):
    """Ray Serve's proxy binds with SO_REUSEPORT; a second server must not share its port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = _recsys("serve", "--port", str(sock.getsockname()[1]), cwd=tmp_path)
    assert result.returncode == 1 and "error: cannot serve on 127.0.0.1:" in result.stderr


@pytest.mark.skipif(cuda_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line_before_ray(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    result = _recsys("serve", "--port", str(free), env={"RECSYS_DEVICE": "cuda"}, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cuda" in line and "no CUDA GPU" in line


def test_serve_help_lists_its_options_without_type_noise():
    result = _recsys("serve", "--help")
    assert result.returncode == 0
    assert "--port" in result.stdout and "--admin-key-file" in result.stdout
    assert "<bool>" not in result.stdout
