"""POST /v1/events rough edges: unknown fields, non-object properties, content type, a batch
whose every event is rejected (real app, real SQLite store)."""

from __future__ import annotations

import json

from tests.utils.http import auth

GOOD = {"user_id": "u1", "item_id": "i1", "event_type": "view"}


def post(client, key, events, **kwargs):
    return client.post("/v1/events", json={"events": events}, headers=auth(key), **kwargs)


def test_unknown_fields_are_rejected_by_name(client, keys, store):
    response = post(client, keys["ingest"], [GOOD, {**GOOD, "colour": "red"}])
    body = response.json()
    assert response.status_code == 200 and body["accepted"] == 1
    (rejection,) = body["rejected"]
    assert (rejection["index"], rejection["field"]) == (1, "colour")
    assert rejection["problem"].startswith("unknown field 'colour'")
    assert store.events.count() == 1


def test_properties_that_are_not_an_object_say_so(client, keys):
    body = post(client, keys["ingest"], [GOOD, {**GOOD, "properties": "x"}]).json()
    (rejection,) = body["rejected"]
    assert rejection["field"] == "properties"
    assert rejection["problem"].startswith('must be a JSON object like {"key": "value"}')


def test_a_batch_with_every_event_rejected_is_422_listing_each(client, keys, store):
    events = [{**GOOD, "user_id": ""}, {**GOOD, "event_type": "teleport"}, {"colour": "red"}]
    response = post(client, keys["ingest"], events)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["field"] for d in detail] == [
        "body.events.0.user_id", "body.events.1.event_type", "body.events.2.colour",
    ]  # fmt: skip
    assert detail[0]["problem"] == "empty user_id"
    assert store.events.count() == 0


def test_an_empty_batch_is_fine(client, keys):
    response = post(client, keys["ingest"], [])
    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_a_body_that_is_not_declared_json_gets_a_hint(client, keys):
    payload = json.dumps({"events": [GOOD]})
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        response = client.post(
            "/v1/events",
            content=payload,
            headers=auth(keys["ingest"]) | {"Content-Type": content_type},
        )
        assert response.status_code == 415
        assert "Content-Type: application/json" in response.json()["detail"]
    charset = client.post(
        "/v1/events",
        content=payload,
        headers=auth(keys["ingest"]) | {"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200 and charset.json()["accepted"] == 1


def test_the_key_is_checked_before_the_content_type(client):
    response = client.post("/v1/events", content="events=1", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401
