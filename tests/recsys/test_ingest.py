"""The event path: per-event validation, one commit, subscribers told about new events only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recsys.ingest import EventIngestor
from recsys.store import Store


@pytest.fixture
def ingestor(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'events.db'}")
    yield EventIngestor(store)
    store.close()


def test_valid_events_are_kept_and_bad_ones_rejected_by_index(ingestor):
    result = ingestor.ingest(
        [
            {"user_id": "u1", "item_id": "i1", "event_type": "view"},
            {"user_id": "u1", "item_id": "i2", "event_type": "fly"},
            {"user_id": "u2", "item_id": "i1\ud800", "event_type": "view"},
            {"user_id": "u2", "item_id": "i3", "event_type": "purchase", "value": 4},
        ]
    )
    assert (result.accepted, result.duplicates) == (2, 0)
    assert [(r.index, r.field) for r in result.rejected] == [(1, "event_type"), (2, "item_id")]
    assert ingestor.store.events.count() == 2
    assert ingestor.store.profiles.get("u2")["purchase_count"] == 1


def test_missing_timestamp_means_now(ingestor):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ingestor.ingest([{"user_id": "u1", "item_id": "i1"}], now=now)
    assert ingestor.store.events.recent("u1")[0]["timestamp"] == now


def test_subscribers_see_new_events_once(ingestor):
    seen = []
    ingestor.subscribe("test", seen.append)
    batch = [
        {"event_id": "a", "user_id": "u1", "item_id": "i1"},
        {"event_id": "b", "user_id": "u1", "item_id": "i2"},
    ]
    ingestor.ingest(batch)
    again = ingestor.ingest(batch + [{"event_id": "c", "user_id": "u1", "item_id": "i3"}])
    assert (again.accepted, again.duplicates) == (3, 2)
    assert [[row["event_id"] for row in rows] for rows in seen] == [["a", "b"], ["c"]]


def test_a_failing_subscriber_loses_nothing(ingestor, caplog):
    def broken(rows):
        raise RuntimeError("segment engine down")

    ingestor.subscribe("broken", broken)
    result = ingestor.ingest([{"user_id": "u1", "item_id": "i1"}])
    assert result.accepted == 1 and ingestor.store.events.count() == 1
    assert "segment engine down" in caplog.text
