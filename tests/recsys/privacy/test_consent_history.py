"""Every consent change is recorded with time and source; the current consent follows it."""

from __future__ import annotations

from recsys.store import read_session
from recsys.store.privacy import consent_history, current_consents


def test_changes_are_recorded_with_source_and_the_current_consent_is_derived(engine, store):
    store.customers.put("c1", {"consents": {"email": True, "sms": False}})
    store.customers.put("c1", {"email": "c1@example.com"})  # no consent change: nothing recorded
    store.customers.put("c1", {"consents": {"email": False, "sms": False}}, source="unsubscribe")
    store.customers.put("c1", {"consents": {"push": True}})  # email/sms left out: withdrawn
    with read_session(engine) as session:
        history = consent_history(session, "c1")
        current = current_consents(session, "c1")
    assert [(h["channel"], h["granted"], h["source"]) for h in history] == [
        ("email", True, "api"),
        ("sms", False, "api"),
        ("email", False, "unsubscribe"),
        ("push", True, "api"),
    ]
    assert all(h["at"] for h in history)
    stored = store.customers.get("c1")["consents"]
    assert {k: v for k, v in current.items() if v} == {k: v for k, v in stored.items() if v}
    assert current == {"email": False, "sms": False, "push": True}
    store.erase_user("c1", actor="test")
    with read_session(engine) as session:
        assert consent_history(session, "c1") == []
