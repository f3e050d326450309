"""Customers on SQLite and PostgreSQL: validated attributes beside the aggregates; erasure."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from recsys.data.errors import DataValidationError
from recsys.store import read_session
from recsys.store.tables import Base

FULL = {
    "email": "ann@example.com",
    "country": "DE",
    "time_zone": "Europe/Berlin",
    "consents": {"email": True, "sms": False},
    "attributes": {"tier": "gold", "tags": ["vip"]},
}


def test_put_then_get_with_the_event_aggregates(store, make_events):
    store.events.append(make_events(6, users=2))
    out = store.customers.put("user-0", FULL)
    assert {k: out[k] for k in FULL} == FULL
    assert out["event_count"] == 3 and out["purchase_count"] == 1 and out["first_seen"]
    assert store.customers.get("nobody") is None
    # A new customer without events has zero aggregates.
    fresh = store.customers.put("new", {"country": "FR"})
    assert fresh["event_count"] == 0 and fresh["email"] is None and fresh["updated_at"]


def test_fields_left_out_keep_their_value_and_null_clears(store):
    store.customers.put("u", FULL)
    out = store.customers.put("u", {"consents": {"email": False}, "country": None})
    assert out["consents"] == {"email": False} and out["country"] is None
    assert out["email"] == FULL["email"] and out["time_zone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("fields", "column", "words"),
    [
        ({"email": "not-an-address"}, "email", "is not an e-mail address"),
        ({"email": "a@b"}, "email", "is not an e-mail address"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone 'Mars/Olympus'"),
        ({"time_zone": "../etc/passwd"}, "time_zone", "unknown time zone"),
        ({"consents": {"sms": "yes"}}, "consents", "consents.sms must be true or false"),
        ({"consents": ["email"]}, "consents", "must be a JSON object"),
        ({"attributes": 5}, "attributes", "must be a JSON object"),
        ({"nickname": "x"}, "nickname", "unknown field(s) 'nickname'"),
        ({"country": "x" * 65}, "country", "longer than 64"),
        ({"attributes": {"k": "a\x00b"}}, "attributes", "NUL"),
    ],
)
def test_bad_fields_are_refused_by_name_and_nothing_is_written(store, fields, column, words):
    store.customers.put("u", FULL)
    with pytest.raises(DataValidationError, match="column") as caught:
        store.customers.put("u", fields)
    assert caught.value.column == column and words in caught.value.problem
    assert {k: store.customers.get("u")[k] for k in FULL} == FULL


def test_erasure_removes_the_customer_attributes(engine, store, make_events):
    victim = "victim-c7e1"
    records = make_events(4, users=1)
    for record in records:
        record["user_id"] = victim
    store.events.append(records)
    store.customers.put(victim, {**FULL, "email": "victim-c7e1@example.com"})
    store.items.upsert([{"item_id": "i1", "title": "Mug"}])
    receipt = store.erase_user(victim, actor="cli")
    assert receipt["deleted"]["user_profiles"] == 1
    assert store.customers.get(victim) is None
    with read_session(engine) as session:  # no row of any table (items included) names them
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                assert victim not in json.dumps(list(row), default=str), table.name
    assert store.items.get("i1")["title"] == "Mug"
