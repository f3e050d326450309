"""Catalogue and customer routes on the real app (TestClient, real SQLite store and bundle)."""

from __future__ import annotations

import pytest

from tests.utils.http import auth


def test_put_items_upserts_and_rejects_one_by_one(client, keys, store):
    items = [
        {"item_id": "sku-1", "title": "Mug", "category": "kitchen", "price": 9.5, "stock": 4},
        {"item_id": "sku-2", "price": "cheap"},
        {"item_id": "sku-3", "in_stock": False, "attributes": {"brand": "acme"}},
        {"title": "no id"},
    ]
    response = client.put("/v1/items", json={"items": items}, headers=auth(keys["ingest"]))
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "price"), (3, "item_id")]
    assert "'cheap' is not a number" in body["rejected"][0]["problem"]
    got = client.get("/v1/items/sku-1", headers=auth(keys["read"])).json()
    assert got["title"] == "Mug" and got["stock"] == 4 and got["in_stock"] is True
    # A stock feed: only the stock level; the rest stays.
    client.put("/v1/items", json={"items": [{"item_id": "sku-1", "stock": 0}]},
               headers=auth(keys["ingest"]))  # fmt: skip
    got = client.get("/v1/items/sku-1", headers=auth(keys["read"])).json()
    assert got["title"] == "Mug" and got["stock"] == 0 and got["in_stock"] is False
    assert store.items.get("sku-3")["attributes"] == {"brand": "acme"}


def test_item_routes_need_their_roles_and_limit_the_batch(client, keys):
    one = {"items": [{"item_id": "a"}]}
    assert client.put("/v1/items", json=one, headers=auth(keys["read"])).status_code == 403
    assert client.put("/v1/items", json=one).status_code == 401
    assert client.get("/v1/items/a", headers=auth(keys["ingest"])).status_code == 403
    assert client.delete("/v1/items/a", headers=auth(keys["read"])).status_code == 403
    many = {"items": [{"item_id": f"i{n}"} for n in range(1001)]}
    response = client.put("/v1/items", json=many, headers=auth(keys["ingest"]))
    assert response.status_code == 413 and "at most 1000 items" in response.json()["detail"]
    bad = client.put("/v1/items", json={"things": []}, headers=auth(keys["ingest"]))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "body.items"


def test_delete_marks_inactive_and_unknown_items_are_404(client, keys):
    client.put("/v1/items", json={"items": [{"item_id": "a", "title": "A"}]},
               headers=auth(keys["ingest"]))  # fmt: skip
    gone = client.delete("/v1/items/a", headers=auth(keys["ingest"]))
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert client.get("/v1/items/a", headers=auth(keys["read"])).json()["active"] is False
    for method in ("get", "delete"):
        missing = getattr(client, method)("/v1/items/zz", headers=auth(keys["admin"]))
        assert missing.status_code == 404 and "'zz' is not in the catalogue" in missing.text


def test_ids_with_slashes_do_not_shadow_similar(client, keys, server):
    client.put("/v1/items", json={"items": [{"item_id": "shoes/red 42", "price": 50}]},
               headers=auth(keys["ingest"]))  # fmt: skip
    got = client.get("/v1/items/shoes%2Fred%2042", headers=auth(keys["read"]))
    assert got.status_code == 200 and got.json()["item_id"] == "shoes/red 42"
    known = str(server.engine.item_ids[0])
    similar = client.get(f"/v1/items/{known}/similar?k=3", headers=auth(keys["read"]))
    assert similar.status_code == 200 and similar.json()["strategy"]
    assert similar.json()["item_id"] == known and len(similar.json()["items"]) == 3
    unknown = client.get("/v1/items/no-such/similar", headers=auth(keys["read"]))
    assert unknown.status_code == 404 and "similar" not in unknown.json()["detail"]


def test_put_and_get_a_customer_with_aggregates(client, keys):
    events = [{"user_id": "ann", "item_id": "x", "event_type": "purchase", "value": 12.5}]
    client.post("/v1/events", json={"events": events}, headers=auth(keys["ingest"]))
    body = {
        "email": "ann@example.com",
        "country": "DE",
        "time_zone": "Europe/Berlin",
        "consents": {"email": True, "sms": False},
        "attributes": {"tier": "gold"},
    }
    put = client.put("/v1/users/ann", json=body, headers=auth(keys["ingest"]))
    assert put.status_code == 200 and put.json()["time_zone"] == "Europe/Berlin"
    got = client.get("/v1/users/ann", headers=auth(keys["read"])).json()
    assert {k: got[k] for k in body} == body
    assert got["event_count"] == 1 and got["purchase_count"] == 1 and got["revenue"] == 12.5
    client.put("/v1/users/ann", json={"consents": {"email": False}}, headers=auth(keys["ingest"]))
    got = client.get("/v1/users/ann", headers=auth(keys["read"])).json()
    assert got["consents"] == {"email": False} and got["email"] == "ann@example.com"
    missing = client.get("/v1/users/nobody", headers=auth(keys["read"]))
    assert missing.status_code == 404 and "'nobody' is not known" in missing.json()["detail"]
    assert client.put("/v1/users/ann", json=body, headers=auth(keys["read"])).status_code == 403


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"email": "nope"}, "'nope' is not an e-mail address"),
        ({"time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"consents": {"sms": "yes"}}, "body.consents.sms"),
        ({"nickname": "x"}, "body.nickname"),
        ({"attributes": [1]}, "body.attributes"),
    ],
)
def test_bad_customer_fields_are_422_naming_the_field(client, keys, body, words):
    response = client.put("/v1/users/ann", json=body, headers=auth(keys["ingest"]))
    assert response.status_code == 422 and words in response.text
    assert client.get("/v1/users/ann", headers=auth(keys["read"])).status_code == 404


def test_erasure_removes_the_customer(client, keys, store):
    client.put("/v1/users/eve", json={"email": "eve@example.com"}, headers=auth(keys["ingest"]))
    receipt = client.delete("/v1/users/eve", headers=auth(keys["admin"])).json()
    assert receipt["deleted"]["user_profiles"] == 1
    assert client.get("/v1/users/eve", headers=auth(keys["read"])).status_code == 404
    assert "eve@example.com" not in str(store.audit.list())
