"""Route behaviour on the real app (TestClient, real SQLite store, real model bundle)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from recsys.store import Base
from tests.utils.http import auth


def a_user_and_items(server):
    engine = server.engine
    return str(engine.user_ids[0]), [str(i) for i in engine.item_ids[:5]]


def test_open_probes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"].startswith("local:")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "recsys_request_seconds" in metrics.text and "recsys_model_info" in metrics.text


def test_openapi_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/events", "/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar",
        "/v1/recommendations/cross-sell", "/v1/users/{user_id}", "/v1/admin/reload",
        "/v1/admin/model", "/healthz", "/readyz", "/metrics",
    ):  # fmt: skip
        assert path in paths


def test_recommendations_answer_k_distinct_items_with_version(client, keys, server):
    user, _ = a_user_and_items(server)
    body = client.get(f"/v1/users/{user}/recommendations?k=7", headers=auth(keys["read"])).json()
    ids = [row["item_id"] for row in body["items"]]
    assert len(ids) == 7 and len(set(ids)) == 7
    assert body["strategy"] == "personalised"
    assert body["model_version"] == server.info()["version"]


def test_an_ingested_event_changes_the_next_answer(client, keys, server):
    user, _ = a_user_and_items(server)
    before = client.get(f"/v1/users/{user}/recommendations?k=10", headers=auth(keys["read"]))
    first = [row["item_id"] for row in before.json()["items"]]
    # Carting the item ranked last pulls its neighbours up in the very next answer.
    events = [{"user_id": user, "item_id": first[-1], "event_type": "add_to_cart"}] * 3
    ingest = client.post("/v1/events", json={"events": events}, headers=auth(keys["ingest"]))
    assert ingest.status_code == 200 and ingest.json()["accepted"] == 3
    after = client.get(f"/v1/users/{user}/recommendations?k=10", headers=auth(keys["read"]))
    assert [row["item_id"] for row in after.json()["items"]] != first


def test_unknown_user_gets_popular_then_session_answers(client, keys, server):
    _, items = a_user_and_items(server)
    cold = client.get("/v1/users/new-visitor/recommendations?k=5", headers=auth(keys["read"]))
    assert cold.json()["strategy"] == "popular" and len(cold.json()["items"]) == 5
    event = {"user_id": "new-visitor", "item_id": items[0], "event_type": "view"}
    client.post("/v1/events", json={"events": [event]}, headers=auth(keys["ingest"]))
    warm = client.get("/v1/users/new-visitor/recommendations?k=5", headers=auth(keys["read"]))
    assert warm.json()["strategy"] == "session"


def test_filters_are_applied(client, keys, server):
    user, _ = a_user_and_items(server)
    catalogue = server.engine.catalogue
    category = str(catalogue.category[0])
    url = f"/v1/users/{user}/recommendations?k=5&category={category}&max_price=1000"
    rows = client.get(url, headers=auth(keys["read"])).json()["items"]
    assert rows and all(r["category"] == category and r["price"] <= 1000 for r in rows)
    assert all(r["in_stock"] for r in rows)


@pytest.mark.parametrize(
    "query, field",
    [("k=0", "k"), ("k=500", "k"), ("k=abc", "k"), ("min_price=-1", "min_price")],
)
def test_bad_parameters_are_422_with_the_field(client, keys, server, query, field):
    user, _ = a_user_and_items(server)
    response = client.get(f"/v1/users/{user}/recommendations?{query}", headers=auth(keys["read"]))
    assert response.status_code == 422
    assert any(field in problem["field"] for problem in response.json()["detail"])


def test_min_above_max_price_is_422(client, keys, server):
    user, _ = a_user_and_items(server)
    url = f"/v1/users/{user}/recommendations?min_price=50&max_price=10"
    response = client.get(url, headers=auth(keys["read"]))
    assert response.status_code == 422 and "max_price" in response.json()["detail"]


def test_similar_items_and_unknown_item(client, keys, server):
    _, items = a_user_and_items(server)
    body = client.get(f"/v1/items/{items[0]}/similar?k=5", headers=auth(keys["read"])).json()
    assert len(body["items"]) == 5 and items[0] not in [r["item_id"] for r in body["items"]]
    missing = client.get("/v1/items/no-such-item/similar", headers=auth(keys["read"]))
    assert missing.status_code == 404 and "no-such-item" in missing.json()["detail"]


def test_cross_sell_excludes_the_basket(client, keys, server):
    _, items = a_user_and_items(server)
    body = {"items": items[:2], "k": 6}
    answer = client.post("/v1/recommendations/cross-sell", json=body, headers=auth(keys["read"]))
    returned = [r["item_id"] for r in answer.json()["items"]]
    assert len(returned) == 6 and not set(returned) & set(items[:2])
    empty = client.post(
        "/v1/recommendations/cross-sell", json={"items": []}, headers=auth(keys["read"])
    )
    assert empty.status_code == 422
    unknown = client.post(
        "/v1/recommendations/cross-sell", json={"items": ["nope"]}, headers=auth(keys["read"])
    )
    assert unknown.status_code == 404


def test_events_keep_valid_and_reject_invalid_one_by_one(client, keys, store):
    events = [
        {"user_id": "u1", "item_id": "i1", "event_type": "view"},
        {"user_id": "", "item_id": "i1", "event_type": "view"},
        {"user_id": "u1", "item_id": "i2", "event_type": "teleport"},
        {"user_id": "u1", "item_id": "i3", "event_type": "purchase", "quantity": -2},
        {"user_id": "u1", "item_id": "i4", "timestamp": "yesterday"},
        {"user_id": "u1", "item_id": "i5", "event_type": "purchase", "value": 9.5},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=auth(keys["ingest"]))
    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert [r["field"] for r in body["rejected"]] == [
        "user_id", "event_type", "quantity", "timestamp",
    ]  # fmt: skip
    assert all(r["problem"] for r in body["rejected"])
    assert store.events.count() == 2


def test_event_redelivery_is_idempotent(client, keys, store):
    event = {"event_id": "e-1", "user_id": "u1", "item_id": "i1", "event_type": "view"}
    for _ in range(2):
        body = client.post(
            "/v1/events", json={"events": [event]}, headers=auth(keys["ingest"])
        ).json()
    assert body == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert store.events.count() == 1


def test_oversized_batches_and_bodies_get_413(client, keys):
    batch = [{"user_id": "u", "item_id": "i"}] * 1001
    too_many = client.post("/v1/events", json={"events": batch}, headers=auth(keys["ingest"]))
    assert too_many.status_code == 413 and "1000" in too_many.json()["detail"]
    huge = {"events": [{"user_id": "u" * 100_000, "item_id": "i"}] * 3}
    too_big = client.post("/v1/events", json=huge, headers=auth(keys["ingest"]))
    assert too_big.status_code == 413


def test_malformed_json_is_422(client, keys):
    response = client.post(
        "/v1/events",
        content=b"{not json",
        headers=auth(keys["ingest"]) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.json()["detail"]


def test_erasure_leaves_no_row_and_forgets_the_user(client, keys, store, server):
    user, items = a_user_and_items(server)
    events = [{"user_id": user, "item_id": items[0], "event_type": "purchase", "value": 3.0}]
    client.post("/v1/events", json={"events": events}, headers=auth(keys["ingest"]))
    response = client.delete(f"/v1/users/{user}", headers=auth(keys["admin"]))
    receipt = response.json()
    assert response.status_code == 200 and receipt["receipt_id"]
    assert receipt["deleted"]["events"] == 1 and receipt["deleted"]["in_memory"] >= 1
    with store.engine.connect() as connection:
        for table in inspect(store.engine).get_table_names():
            columns = [c["name"] for c in inspect(store.engine).get_columns(table)]
            for column in columns:
                hits = connection.execute(
                    text(f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) = :u'),
                    {"u": user},
                ).scalar()
                assert hits == 0, f"{table}.{column} still holds the erased user"
    assert {t.name for t in Base.metadata.sorted_tables} <= set(
        inspect(store.engine).get_table_names()
    )
    after = client.get(f"/v1/users/{user}/recommendations?k=5", headers=auth(keys["read"]))
    assert after.json()["strategy"] == "popular"  # no trained vector, no history left
    audit = store.audit.list(action="user.erase")
    assert audit and user not in str(audit[0])


def test_admin_model_and_reload(client, keys, store):
    info = client.get("/v1/admin/model", headers=auth(keys["admin"])).json()
    assert info["version"].startswith("local:") and info["n_items"] > 0
    reloaded = client.post("/v1/admin/reload", headers=auth(keys["admin"])).json()
    assert reloaded["version"] == info["version"] and reloaded["changed"] is False
    assert store.audit.list(action="model.reload")


def test_metrics_label_requests_by_route_template(client, keys, server):
    user, _ = a_user_and_items(server)
    client.get(f"/v1/users/{user}/recommendations?k=3", headers=auth(keys["read"]))
    client.get("/v1/users/x/recommendations", headers={})
    text_ = client.get("/metrics").text
    assert 'route="/v1/users/{user_id}/recommendations"' in text_
    assert 'status="401"' in text_ and user not in text_
