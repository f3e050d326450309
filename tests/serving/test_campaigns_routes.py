"""Campaign and template routes over the real app: JSON-path 422s, references, roles, states,
an API trigger delivered by the worker to the outbox, preview, unsubscribe, the report."""

from __future__ import annotations

import pytest

from recsys.campaigns.recommend import engine_recommender
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from tests.utils.http import auth

SECRET = "route-secret-" + "x" * 20
TEMPLATE = {"subject": "For you, {{ customer.user_id }}",
            "text": "{% for r in recommendations %}{{ r.item_id }}\n{% endfor %}"
                    "{{ unsubscribe_url }}"}  # fmt: skip
DEFINITION = {
    "name": "Welcome",
    "trigger": {"type": "api"},
    "start": "ab",
    "steps": {
        "ab": {"type": "split", "arms": [{"name": "mail", "weight": 3, "next": "mail"},
                                          {"name": "holdout", "weight": 1, "holdout": True}]},
        "mail": {"type": "send", "channel": "email", "template": "welcome",
                 "recommendations": {"k": 3}},
    },
}  # fmt: skip


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("RECSYS_CAMPAIGN_SECRET", SECRET)


def test_definition_errors_name_the_json_path(client, keys):
    marketer = auth(keys["marketer"])
    bad = {**DEFINITION, "steps": {**DEFINITION["steps"], "mail": {"type": "send"}}}
    response = client.post("/v1/campaigns", json={"definition": bad}, headers=marketer)
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["detail"]}
    assert {"definition.steps.mail.channel", "definition.steps.mail.template"} <= fields
    response = client.post("/v1/campaigns", json={"definition": DEFINITION}, headers=marketer)
    assert response.status_code == 422  # the template does not exist yet
    assert response.json()["detail"] == [
        {"field": "definition.steps.mail.template", "problem": "unknown template 'welcome'"}
    ]
    segment = {**DEFINITION, "trigger": {"type": "segment", "segment_id": "nope"}}
    client.put("/v1/templates/welcome", json=TEMPLATE, headers=marketer)
    response = client.post("/v1/campaigns", json={"definition": segment}, headers=marketer)
    assert response.json()["detail"][0]["field"] == "definition.trigger.segment_id"
    response = client.put("/v1/templates/t", json={"text": "{{ nope.x }}"}, headers=marketer)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "text", "problem": "'nope' is undefined"}]
    read = auth(keys["read"])
    assert (
        client.post("/v1/campaigns", json={"definition": DEFINITION}, headers=read).status_code
        == 403
    )


def test_campaign_lifecycle_trigger_outbox_report_unsubscribe(client, keys, store, server):
    marketer, read = auth(keys["marketer"]), auth(keys["read"])
    assert client.put("/v1/templates/welcome", json=TEMPLATE, headers=marketer).status_code == 200
    body = {"id": "welcome", "definition": DEFINITION}
    created = client.post("/v1/campaigns", json=body, headers=marketer)
    assert created.status_code == 201 and created.json()["status"] == "draft"
    users = [f"route-{i}" for i in range(20)]
    trigger = client.post(
        "/v1/campaigns/welcome/trigger", json={"user_ids": users}, headers=marketer
    )
    assert trigger.status_code == 409  # a draft enrols nobody
    for status in ("active", "paused", "active"):
        answer = client.post(
            "/v1/campaigns/welcome/status", json={"status": status}, headers=marketer
        )
        assert answer.status_code == 200 and answer.json()["status"] == status
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    trigger = client.post(
        "/v1/campaigns/welcome/trigger", json={"user_ids": users}, headers=marketer
    )
    assert trigger.json() == {"campaign_id": "welcome", "enrolled": 20, "skipped": 0}
    settings = campaign_settings(campaign_secret=SECRET)
    worker = CampaignWorker(store, {"default": engine_recommender(server.engine)}, settings,
                            channels={}, lag_s=0)  # fmt: skip
    worker.run_once()
    page = client.get("/v1/campaigns/welcome/messages", headers=read).json()["messages"]
    assert 0 < len(page) < 20 and all(len(m["items"]) == 3 for m in page)
    report = client.get("/v1/campaigns/welcome/report", headers=read).json()
    arms = {a["arm"]: a for a in report["arms"]}
    assert arms["mail"]["enrolled"] + arms["holdout"]["enrolled"] == 20
    assert arms["mail"]["delivered"] == len(page) and arms["holdout"]["sends"] == 0
    token = page[0]["text"].rsplit("token=", 1)[1].strip()
    answer = client.get(f"/v1/unsubscribe?token={token}")  # open: no key
    assert answer.status_code == 200 and answer.json()["unsubscribed"] is True
    assert store.customers.get(page[0]["user_id"])["consents"] == {"email": False}
    assert client.get("/v1/unsubscribe?token=forged.abc").status_code == 422
    archived = client.delete("/v1/campaigns/welcome", headers=marketer)
    assert archived.json()["status"] == "archived"
    again = client.post("/v1/campaigns/welcome/status", json={"status": "active"}, headers=marketer)
    assert again.status_code == 409


def test_preview_renders_recommendations_for_a_customer(client, keys, store, server):
    store.customers.put("p1", {"email": "p1@example.com"})
    body = {"user_id": "p1", "template": TEMPLATE, "k": 2}
    answer = client.post("/v1/templates/preview", json=body, headers=auth(keys["read"]))
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["subject"] == "For you, p1" and len(out["items"]) == 2
    assert "/v1/unsubscribe?token=" in out["text"]


def test_shipped_campaigns_run_and_show_in_the_outbox(client, keys, store, settings, server):
    from datetime import UTC, datetime, timedelta

    from serving.worker import build_worker, install_shipped

    assert install_shipped(store) == ["cart-abandonment", "post-purchase-cross-sell",
                                      "win-back-at-risk"]  # fmt: skip
    items_ids = [str(i) for i in server.engine.item_ids[:5]]
    at = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    store.customers.put("shopper", {"email": "shopper@example.com", "consents": {"email": True}})
    event = {"user_id": "shopper", "event_type": "add_to_cart", "item_id": items_ids[0],
             "timestamp": at.isoformat()}  # fmt: skip
    answer = client.post("/v1/events", json={"events": [event]}, headers=auth(keys["ingest"]))
    assert answer.status_code in (200, 201, 202), answer.text
    worker = build_worker(settings, store, clock=lambda: at + timedelta(hours=2), channels={},
                          settings=campaign_settings(campaign_secret=SECRET), lag_s=0)  # fmt: skip
    worker.run_once()
    page = client.get("/v1/campaigns/cart-abandonment/messages", headers=auth(keys["read"]))
    (message,) = page.json()["messages"]
    assert message["user_id"] == "shopper" and len(message["items"]) == 4
    assert "Your cart is waiting" in message["text"]


def test_worker_service_runs_the_loop_in_the_background(client, keys, store, settings):
    import time

    from serving.worker import CampaignWorkerService

    marketer = auth(keys["marketer"])
    client.put("/v1/templates/welcome", json=TEMPLATE, headers=marketer)
    client.post("/v1/campaigns", json={"id": "bg", "status": "active", "definition": DEFINITION},
                headers=marketer)  # fmt: skip
    users = [f"bg-{i}" for i in range(8)]
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    client.post("/v1/campaigns/bg/trigger", json={"user_ids": users}, headers=marketer)
    service = CampaignWorkerService(settings.model_dump(mode="json"), poll_s=0.05)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = client.get("/v1/campaigns/bg/report", headers=auth(keys["read"])).json()
            if sum(a["sends"] for a in report["arms"]) + sum(
                a["enrolled"] for a in report["arms"] if a["holdout"]
            ) == len(users):
                break
            time.sleep(0.2)
        assert service.status()["running"] and "bg" in service.status()["campaigns"]
        assert "cart-abandonment" in service.status()["campaigns"]  # shipped ones installed
        assert sum(a["delivered"] for a in report["arms"]) > 0
    finally:
        service.stop.set()
        service.thread.join(timeout=10)
