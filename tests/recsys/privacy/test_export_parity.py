"""Export and erasure come from one registry: same tables, and what is exported is erased."""

from __future__ import annotations

import json

from recsys.store import Store, erasure_hooks  # Store imports every table module
from recsys.store.erasure import export_user
from recsys.store.tables import Base

VICTIM = "victim-42"


def test_every_erasure_hook_has_an_export_and_the_lists_are_the_same():
    assert Store  # every module that registers hooks is imported
    assert erasure_hooks.names() == erasure_hooks.export_names()
    assert {"events", "user_profiles", "consent_history", "campaigns"} <= set(erasure_hooks.names())


def test_every_table_with_a_user_id_column_is_covered_by_a_hook(engine, store, make_events):
    """A new per-user table without a hook fails here: its rows would survive an erasure."""
    records = make_events(9, users=3)
    for r in records:
        r["user_id"] = VICTIM if r["user_id"] == "user-1" else r["user_id"]
    store.events.append(records)
    store.customers.put(VICTIM, {"email": "v@example.com", "consents": {"email": True}})
    exported = export_user(engine, VICTIM)
    text = json.dumps(exported, default=str)
    assert VICTIM in text and "v@example.com" in text
    assert len(exported["events"]) == 3 and exported["user_profiles"][0]["email"]
    assert exported["consent_history"][0]["granted"] is True
    with_user = {t.name for t in Base.metadata.sorted_tables if "user_id" in t.c}
    store.erase_user(VICTIM, actor="test")
    left = export_user(engine, VICTIM)
    assert all(not value for value in _leaves(left)), left
    for name in with_user:  # no table keeps a row naming the user
        table = Base.metadata.tables[name]
        with engine.connect() as conn:
            rows = conn.execute(table.select().where(table.c.user_id == VICTIM)).all()
        assert rows == [], name


def _leaves(value):
    if isinstance(value, dict):
        for inner in value.values():
            yield from _leaves(inner)
    else:
        yield value
