"""The app's edges a new user meets: request ids on 500s, disconnects in /metrics, HEAD probes,
a readiness check that really asks the store, and /docs that needs no CDN."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil

import pytest
from fastapi.testclient import TestClient

from recsys.store import Store
from serving.app import create_app
from serving.model_client import LocalModelClient
from tests.utils.http import auth


def _raise_a_bug():
    raise RuntimeError("a bug in a route")


@pytest.fixture
def app(settings, store, server):
    app = create_app(settings, store, LocalModelClient(server))
    app.add_api_route("/boom", _raise_a_bug)  # a route with a bug, on the real app
    return app


def test_a_500_logs_its_traceback_under_the_request_id_it_returns(app, caplog):
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="serving.app"):
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    [record] = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert record.exc_info and "a bug in a route" in str(record.exc_info[1])


def test_a_sane_client_request_id_is_kept_and_a_forged_one_replaced(app):
    client = TestClient(app, raise_server_exceptions=False)
    given = client.get("/boom", headers={"X-Request-ID": "shop-checkout-42"})
    assert given.json()["request_id"] == "shop-checkout-42"
    # whoever sent the id has it (Ray Serve's proxy echoes it): no second header from the app
    assert "X-Request-ID" not in given.headers
    assert "X-Request-ID" not in client.get("/healthz", headers={"X-Request-ID": "abc"}).headers
    forged = client.get("/healthz", headers={"X-Request-ID": "x\tinjected line"})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def _post_events(app, receive) -> list[dict]:
    """Drive the ASGI app directly with a client that leaves; returns what it tried to send."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def run():
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(0.2)
        if not task.done():  # what Ray Serve's proxy does when the client goes away
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    return sent


def test_a_client_that_leaves_is_counted_as_a_disconnect_not_a_500(app, keys):
    async def leaves_at_once():
        return {"type": "http.disconnect"}

    async def never_sends_the_body():
        await asyncio.Event().wait()

    _post_events(app, leaves_at_once)
    _post_events(app, never_sends_the_body)
    with TestClient(app) as client:
        text = client.get("/metrics").text
    line = 'recsys_http_client_disconnects_total{method="POST",route="/v1/events"} 2.0'
    assert line in text
    assert 'status="500"' not in text and "recsys_errors_total{" not in text


def test_probes_answer_head(client):
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""


def test_readyz_checks_the_store(settings, server, tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'db' / 'recsys.db'}")
    with TestClient(create_app(settings, store, LocalModelClient(server))) as client:
        assert client.get("/readyz").status_code == 200
        shutil.rmtree(tmp_path / "db")  # the database goes away under a running service
        store.engine.dispose()
        response = client.get("/readyz")
        assert client.head("/readyz").status_code == 503
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["store"] == "unavailable"
    assert any("cannot connect to database" in reason for reason in body["reasons"])


def test_readyz_reports_a_ready_store(client):
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["store"] == "ok" and "reasons" not in body


def test_docs_need_no_cdn(client, keys):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "openapi.json" in html
        assert not re.findall(r"https?://(?!testserver)[\w.-]+", html), page
        assets = re.findall(r"""(?:src|href)=["'](/docs-assets/[^"']+)["']""", html)
        assert any(asset.endswith(".js") for asset in assets), page
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json", headers=auth(keys["read"])).status_code == 200
