"""Segment routes on the real app: CRUD, JSON-path errors, roles, members, the real-time path."""

from __future__ import annotations

from tests.utils.http import auth

ABANDONED = {"type": "performed", "event_type": "add_to_cart", "window": {"seconds": 3600}}


def test_a_definition_error_names_its_json_path(client, keys):
    body = {
        "name": "bad",
        "definition": {
            "type": "and",
            "children": [
                {"type": "rfm", "group": "Champions"},
                {"type": "performed", "event_type": "purchase", "window": {"seconds": 0}},
            ],
        },
    }
    answer = client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"field": "definition.children[1].window.seconds", "problem": "must be > 0"}
    ]
    body["definition"] = {"type": "or", "children": [{"type": "teleported"}]}
    detail = client.post("/v1/segments", json=body, headers=auth(keys["marketer"])).json()
    assert detail["detail"][0]["field"] == "definition.children[0]"
    assert "unknown node type 'teleported'" in detail["detail"][0]["problem"]
    body["definition"] = {"type": "in_segment", "segment_id": "missing"}
    answer = client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    assert answer.status_code == 422
    assert answer.json()["detail"] == "definition.segment_id: unknown segment 'missing'"


def test_roles_crud_and_openapi(client, keys):
    body = {"id": "carts", "name": "Carts", "definition": ABANDONED}
    assert client.post("/v1/segments", json=body, headers=auth(keys["read"])).status_code == 403
    created = client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    assert created.status_code == 201 and created.json()["size"] == 0
    again = client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    assert again.status_code == 409
    listed = client.get("/v1/segments", headers=auth(keys["read"])).json()["segments"]
    assert [s["id"] for s in listed] == ["carts"]
    changed = client.put(
        "/v1/segments/carts", json={"name": "Cart adders"}, headers=auth(keys["marketer"])
    )
    assert changed.json()["name"] == "Cart adders"
    assert changed.json()["definition"]["window"] == {"seconds": 3600}
    assert client.get("/v1/segments/nope", headers=auth(keys["read"])).status_code == 404
    gone = client.delete("/v1/segments/carts", headers=auth(keys["marketer"]))
    assert gone.json() == {"id": "carts", "members_removed": 0}
    schema = client.get("/openapi.json").json()
    assert "/v1/segments/{segment_id}/members" in schema["paths"]
    assert "/v1/users/{user_id}/segments" in schema["paths"]
    assert {"Performed", "NotPerformedSince", "RandomBucket"} <= set(
        schema["components"]["schemas"]
    )


def test_an_event_is_reflected_in_the_customer_segments_right_away(client, keys):
    body = {"id": "carts", "name": "Carts", "definition": ABANDONED}
    client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    url = "/v1/users/shopper-1/segments"
    assert client.get(url, headers=auth(keys["read"])).json()["segments"] == []
    event = {"user_id": "shopper-1", "item_id": "x1", "event_type": "add_to_cart", "value": 9.5}
    posted = client.post("/v1/events", json={"events": [event]}, headers=auth(keys["ingest"]))
    assert posted.status_code == 200 and posted.json()["accepted"] == 1
    segments = client.get(url, headers=auth(keys["read"])).json()["segments"]
    assert [s["segment_id"] for s in segments] == ["carts"]


def test_members_pages_preview_and_stats(client, keys):
    events = [
        {"user_id": f"m{i:02d}", "item_id": "x1", "event_type": "add_to_cart"} for i in range(7)
    ]
    client.post("/v1/events", json={"events": events}, headers=auth(keys["ingest"]))
    preview = client.post(
        "/v1/segments/preview", json={"definition": ABANDONED, "sample": 3},
        headers=auth(keys["read"]),
    ).json()  # fmt: skip
    assert preview["count"] == 7 and len(preview["sample"]) == 3
    body = {"id": "carts", "name": "Carts", "definition": ABANDONED}
    client.post("/v1/segments", json=body, headers=auth(keys["marketer"]))
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(
            "/v1/segments/carts/members", params=params, headers=auth(keys["read"])
        ).json()
        seen += [m["user_id"] for m in page["members"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"m{i:02d}" for i in range(7)]
    stats = client.get("/v1/segments/carts/stats?days=2", headers=auth(keys["read"])).json()
    assert stats["size"] == 7 and stats["days"][-1]["entries"] == 7
    bad = client.get("/v1/segments/carts/members?limit=0", headers=auth(keys["read"]))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "limit"
