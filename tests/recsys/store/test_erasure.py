"""Erasure on SQLite and PostgreSQL: no row anywhere names the user afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select

from recsys.store import ErasureRegistry, erasure_hooks, is_erased, read_session, user_hash
from recsys.store.erasure import ERASE_ACTION
from recsys.store.tables import Base, Erasure, Event

VICTIM = "victim-7f3a9c"


def _rows_naming(engine, text: str) -> list[tuple[str, tuple]]:
    """Every row, in every table of the metadata, with a value containing ``text``."""
    found = []
    with read_session(engine) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                values = [json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
                          for v in row]  # fmt: skip
                if any(text in v for v in values):
                    found.append((table.name, tuple(row)))
    return found


def _populate(store, make_events):
    records = make_events(20, users=2)
    for r in records:
        if r["user_id"] == "user-1":
            r["user_id"] = VICTIM
    store.events.append(records)
    store.profiles.upsert_users(
        [{"user_id": VICTIM, "email": "v@example.com", "consents": {"email": True}}]
    )
    store.audit.record("key:1:rk_abc", "campaign.send", VICTIM, {"campaign": "winback"})
    store.keys.create("read", "frontend")


def test_erasure_leaves_no_row_of_the_user_in_any_table(engine, store, make_events):
    _populate(store, make_events)
    assert {name for name, _ in _rows_naming(engine, VICTIM)} == {
        "events",
        "user_profiles",
        "customer_aggregates",
        "audit_log",
    }
    receipt = store.erase_user(VICTIM, actor="key:1:rk_abc")

    assert _rows_naming(engine, VICTIM) == []
    assert receipt["user_id"] == VICTIM and receipt["user_hash"] == user_hash(VICTIM)
    assert receipt["deleted"]["events"] == 10 and receipt["deleted"]["user_profiles"] == 1
    assert receipt["deleted"]["audit_log_targets"] == 1
    assert datetime.fromisoformat(receipt["erased_at"]).tzinfo == UTC
    # The other user is untouched.
    assert store.events.count() == 10 and store.profiles.get("user-0")["event_count"] == 10
    # Receipt row and audit record, both by hash.
    with read_session(engine) as session:
        row = session.get(Erasure, receipt["receipt_id"])
        assert row.user_hash == user_hash(VICTIM) and row.counts == receipt["deleted"]
        assert is_erased(session, VICTIM) and not is_erased(session, "user-0")
    entry = store.audit.list(action=ERASE_ACTION)[0]
    assert entry.actor == "key:1:rk_abc" and entry.target == f"user:{user_hash(VICTIM)}"
    assert entry.details["receipt_id"] == receipt["receipt_id"]
    assert store.audit.list(action="campaign.send")[0].target == f"user:{user_hash(VICTIM)}"


def test_erasing_an_unknown_user_still_gives_a_receipt(store):
    receipt = store.erase_user("nobody", actor="cli")
    assert set(receipt["deleted"].values()) == {0}
    with pytest.raises(ValueError, match="non-empty"):
        store.erase_user("  ", actor="cli")


def test_registered_hooks_run_in_the_same_transaction(engine, store, make_events):
    _populate(store, make_events)
    calls = []

    def forget_sessions(session, user_id):
        calls.append(user_id)
        # The hook sees the events not yet deleted by later hooks, in the same transaction.
        return len(session.scalars(select(Event.id).where(Event.user_id == user_id)).all())

    registry = ErasureRegistry()
    registry.register("sessions", forget_sessions)
    for name, hook in erasure_hooks.items():
        registry.register(name, hook)
    receipt = store.erase_user(VICTIM, actor="cli", registry=registry)
    assert calls == [VICTIM] and receipt["deleted"]["sessions"] == 10
    assert list(receipt["deleted"]) == registry.names()


def test_a_failing_hook_rolls_the_whole_erasure_back(engine, store, make_events):
    _populate(store, make_events)

    def broken(session, user_id):
        session.execute(delete(Event).where(Event.user_id == user_id))
        raise RuntimeError("segment store unavailable")

    registry = ErasureRegistry()
    for name, hook in erasure_hooks.items():
        registry.register(name, hook)
    registry.register("segments", broken)
    with pytest.raises(RuntimeError, match="segment store"):
        store.erase_user(VICTIM, actor="cli", registry=registry)
    assert store.events.count() == 20
    assert store.profiles.get(VICTIM) is not None
    assert store.audit.list(action=ERASE_ACTION) == []
    with read_session(engine) as session:
        assert not is_erased(session, VICTIM)


def test_registry_rules():
    registry = ErasureRegistry()
    hook = lambda session, user_id: 0  # noqa: E731
    registry.register("a", hook)
    registry.register("a", hook)  # the same hook again is fine (module re-import)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", lambda session, user_id: 1)
    registry.register("a", lambda session, user_id: 1, replace=True)
    with pytest.raises(TypeError):
        registry.register("b", "not callable")
    registry.unregister("a")
    registry.unregister("a")
    assert registry.names() == []
    assert {"events", "user_profiles"} <= set(erasure_hooks.names())


def test_drop_erased_removes_only_the_erased_users_rows():
    import pandas as pd

    from recsys.store import drop_erased

    frame = pd.DataFrame({"user_id": ["a", "b", "a", "c"], "item_id": ["1", "2", "3", "4"]})
    kept = drop_erased(frame, {user_hash("a"), user_hash("nobody")})
    assert kept["user_id"].tolist() == ["b", "c"] and kept.index.tolist() == [0, 1]
    assert drop_erased(frame, set()) is frame and drop_erased(None, {user_hash("a")}) is None
    items = pd.DataFrame({"item_id": ["1"]})
    assert drop_erased(items, {user_hash("a")}) is items  # no user_id column: nothing to drop
    numeric = pd.DataFrame({"user_id": [7, 8]})  # ids read as numbers hash as their text
    assert drop_erased(numeric, {user_hash("7")})["user_id"].tolist() == [8]
