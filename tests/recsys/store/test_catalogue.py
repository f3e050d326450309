"""The catalogue table on SQLite and PostgreSQL: upsert by id, partial rejection, deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from recsys.errors import NotFoundError
from recsys.store import MIGRATIONS, init_schema
from recsys.store.tables import Item


def test_upsert_writes_valid_items_and_reports_each_bad_one(store):
    result = store.items.upsert(
        [
            {"item_id": "a", "title": "Mug", "category": "kitchen", "price": 9.5, "stock": 3},
            {"item_id": "b", "price": -1},
            {"item_id": "c", "colour": "red"},
            "not an object",
            {"item_id": "d", "attributes": {"brand": "x", "tags": ["a", "b"]}},
            {"item_id": "e" * 300},
            {"item_id": "f", "title": "bad\x00title"},
            {"item_id": "a", "price": 1},
        ]
    )
    assert result.accepted == 2
    assert [(r.index, r.field) for r in result.rejected] == [
        (1, "price"),
        (2, "colour"),
        (3, None),
        (5, "item_id"),
        (6, "title"),
        (7, "item_id"),
    ]
    assert "must be >= 0" in result.rejected[0].problem
    assert "duplicate item_id 'a'" in result.rejected[-1].problem
    a = store.items.get("a")
    assert (a["title"], a["category"], a["price"], a["stock"]) == ("Mug", "kitchen", 9.5, 3)
    assert a["in_stock"] is True and a["active"] is True and a["updated_at"].tzinfo is not None
    assert store.items.get("d")["attributes"] == {"brand": "x", "tags": ["a", "b"]}
    assert store.items.get("b") is None and store.items.count() == 2


def test_fields_left_out_keep_their_value_and_stock_sets_in_stock(store):
    store.items.upsert([{"item_id": "a", "title": "Mug", "category": "kitchen", "price": 9.5}])
    first = store.items.get("a")
    store.items.upsert([{"item_id": "a", "stock": 0}])
    out = store.items.get("a")
    assert (out["title"], out["price"], out["stock"], out["in_stock"]) == ("Mug", 9.5, 0, False)
    assert out["updated_at"] > first["updated_at"]
    store.items.upsert([{"item_id": "a", "stock": 0, "in_stock": True, "price": None}])
    out = store.items.get("a")
    assert out["in_stock"] is True and out["price"] is None and out["category"] == "kitchen"


def test_deactivate_and_upsert_again_reactivates(store):
    store.items.upsert([{"item_id": "a", "title": "Mug"}])
    assert store.items.deactivate("a")["active"] is False
    assert store.items.count() == 1 and store.items.count(active_only=True) == 0
    store.items.upsert([{"item_id": "a", "price": 2}])
    assert store.items.get("a")["active"] is True
    store.items.upsert([{"item_id": "a", "active": False}])
    assert store.items.get("a")["active"] is False
    with pytest.raises(NotFoundError, match="'zz' is not in the catalogue"):
        store.items.deactivate("zz")


def test_changes_since_a_time(store):
    assert store.items.last_change() is None
    store.items.upsert([{"item_id": "a"}, {"item_id": "b"}])
    mark = store.items.last_change()
    assert [i["item_id"] for i in store.items.changed_since()] == ["a", "b"]
    assert store.items.changed_since(mark) == []
    store.items.upsert([{"item_id": "b", "stock": 0}])
    assert [i["item_id"] for i in store.items.changed_since(mark)] == ["b"]
    assert store.items.changed_since(mark - timedelta(days=1), limit=1)[0]["item_id"] == "a"
    frame = store.items.export_frame()
    assert frame["item_id"].tolist() == ["a", "b"] and frame["in_stock"].tolist() == [True, False]


def test_step_2_upgrades_a_version_1_database(db):
    engine = db.engine()
    init_schema(engine)
    with engine.begin() as conn:  # back to what step 1 left behind
        conn.execute(text("DROP TABLE items"))
        for column in ("time_zone", "updated_at"):
            conn.execute(text(f"ALTER TABLE user_profiles DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_version WHERE version >= 2"))
    assert init_schema(engine) == MIGRATIONS[-1].version >= 2
    inspector = inspect(engine)
    profile_columns = {c["name"] for c in inspector.get_columns("user_profiles")}
    assert {"time_zone", "updated_at"} <= profile_columns
    assert {c["name"] for c in inspector.get_columns("items")} == set(Item.__table__.c.keys())
