"""An acknowledged event survives `kill -9` of the server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx

from recsys.store import Store

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from recsys.store import Store
    from serving.app import create_app
    from serving.model_client import LocalModelClient
    from serving.model_server import ModelServer
    from serving.settings import Settings

    db, bundle, port, key = sys.argv[1:5]
    settings = Settings(database_url=db, model_uri=bundle, device="cpu")
    store = Store.open(db)
    store.keys.ensure_admin(key)
    app = create_app(settings, store, LocalModelClient(ModelServer(settings)))
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_acknowledged_events_survive_sigkill(tmp_path, bundle_dir):
    db = f"sqlite:///{tmp_path / 'recsys.db'}"
    port, key = _free_port(), "rk_durability-test-admin-key"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, db, str(bundle_dir), str(port), key],
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            assert server.poll() is None, "server exited"
            time.sleep(0.2)
        acknowledged = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            for batch in range(5):
                events = [
                    {"event_id": f"e{batch}-{i}", "user_id": f"u{i}", "item_id": "i1"}
                    for i in range(50)
                ]
                answer = client.post("/v1/events", json={"events": events})
                assert answer.status_code == 200
                acknowledged += answer.json()["accepted"]
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown, no flush, no goodbye
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert acknowledged == 250
    store = Store.open(db)
    try:
        assert store.events.count() == acknowledged
    finally:
        store.close()
