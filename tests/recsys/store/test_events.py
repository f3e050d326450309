"""EventStore on SQLite and PostgreSQL: append, idempotency, atomicity, profiles, export."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import event, func, select

from recsys.data.errors import DataValidationError
from recsys.data.event_check import validate_event
from recsys.data.schemas import EVENTS, USERS
from recsys.data.validate import validate_frame
from recsys.store import EventStore, ProfileStore, read_session
from recsys.store.tables import Event, UserProfile

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # the conftest's t0


def test_append_then_read_back(store, make_events, t0):
    records = make_events(12, users=3)
    result = store.events.append(records)
    assert (result.inserted, result.duplicates) == (12, 0)
    assert store.events.count() == 12
    assert store.events.user_ids() == ["user-0", "user-1", "user-2"]

    recent = store.events.recent("user-1", limit=3)
    assert [e["event_id"] for e in recent] == ["e10", "e7", "e4"]  # newest first
    first = recent[0]
    assert first["timestamp"] == t0 + timedelta(minutes=10)
    assert first["timestamp"].utcoffset() == timedelta(0)
    assert first["properties"] == {"page": 10}
    assert first["session_id"] == "s1" and first["item_id"] == "item-3"
    assert first["ingested_at"].tzinfo is not None


def test_a_fresh_engine_sees_committed_events(store_db, engine, make_events):
    EventStore(engine).append(make_events(5))
    other = store_db.engine()
    assert EventStore(other).count() == 5


def test_duplicates_by_event_id_are_skipped(store, make_events):
    records = make_events(10)
    assert store.events.append(records[:6]).inserted == 6
    again = records[3:] + [records[9] | {"user_id": "someone-else"}]  # repeat within the batch
    result = store.events.append(again)
    assert (result.inserted, result.duplicates) == (4, 4)
    assert store.events.count() == 10
    # Events without an event_id are never deduplicated.
    anonymous = [r | {"event_id": None} for r in records[:2]]
    assert store.events.append(anonymous).inserted == 2
    assert store.events.count() == 12
    # Duplicates do not count twice in the profile.
    profile = store.profiles.get("user-0")
    assert profile["event_count"] == 4 + 1  # e0 e3 e6 e9, plus anonymous e0


def test_bad_record_rejects_the_whole_batch(store, make_events):
    store.events.append(make_events(3, prefix="old"))
    records = make_events(5)
    records[3]["event_type"] = "teleport"
    with pytest.raises(DataValidationError) as err:
        store.events.append(records)
    assert err.value.row == 4 and err.value.column == "event_type"
    assert "teleport" in str(err.value)
    assert store.events.count() == 3


@pytest.mark.parametrize(
    "change, column",
    [
        ({"user_id": ""}, "user_id"),
        ({"item_id": None}, "item_id"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": T0.replace(tzinfo=None)}, "timestamp"),
        ({"quantity": -1}, "quantity"),
        ({"value": float("inf")}, "value"),
        ({"properties": "[1, 2]"}, "properties"),
        ({"colour": "red"}, "colour"),
        ({"user_id": "u" * 256}, "user_id"),
        ({"event_id": "e" * 129}, "event_id"),
        ({"session_id": "a\x00b"}, "session_id"),
        ({"properties": {"when": T0}}, "properties"),
        ({"properties": {"x": float("nan")}}, "properties"),
        ({"properties": {"x": "a\x00b"}}, "properties"),
        ({"quantity": 2**63}, "quantity"),
        ({"timestamp": 1e20}, "timestamp"),
    ],
)
def test_light_checks_name_row_and_column(store, make_events, change, column):
    records = make_events(2)
    records[1] = records[1] | change
    with pytest.raises(DataValidationError) as err:
        store.events.append(records)
    assert (err.value.row, err.value.column) == (2, column)
    assert store.events.count() == 0


@pytest.mark.parametrize(
    "target, nth", [("INSERT INTO events", 2), ("INSERT INTO user_profiles", 1)]
)
def test_database_failure_mid_batch_rolls_everything_back(engine, store, make_events, target, nth):
    store.events.append(make_events(2, prefix="old", users=1))
    before = store.profiles.get("user-0")
    seen = {"INSERT INTO events": 0, "INSERT INTO user_profiles": 0}

    # Fault injection at the driver boundary. 1500 events make two INSERT pages, so when the
    # failure strikes the database has already executed at least the first page.
    def crash(conn, cursor, statement, *args):
        for prefix in seen:
            seen[prefix] += statement.startswith(prefix)
        if statement.startswith(target) and seen[target] == nth:
            raise OSError("disk full")

    event.listen(engine, "before_cursor_execute", crash)
    try:
        with pytest.raises(OSError, match="disk full"):
            store.events.append(make_events(1500, users=1))
    finally:
        event.remove(engine, "before_cursor_execute", crash)
    assert seen["INSERT INTO events"] == 2
    assert store.events.count() == 2
    assert store.profiles.get("user-0") == before


def test_profile_aggregates_follow_appends(store):
    def event(i, minutes, kind="view", value=None, user="alice"):
        return {
            "event_id": f"p{i}",
            "user_id": user,
            "item_id": "sku-1",
            "event_type": kind,
            "timestamp": T0 + timedelta(minutes=minutes),
            "value": value,
        }

    store.profiles.upsert_users([{"user_id": "alice", "email": "a@example.com", "country": "NL",
                                  "consents": {"email": True}}])  # fmt: skip
    store.events.append([event(1, 10), event(2, 20, "purchase", 19.5), event(3, 5, user="bob")])
    store.events.append([event(4, 2, "purchase", 5.0), event(5, 30), event(6, 25, "purchase")])
    alice = store.profiles.get("alice")
    assert alice["email"] == "a@example.com" and alice["consents"] == {"email": True}
    assert alice["first_seen"] == T0 + timedelta(minutes=2)
    assert alice["last_seen"] == T0 + timedelta(minutes=30)
    assert (alice["event_count"], alice["purchase_count"]) == (5, 3)
    assert alice["revenue"] == pytest.approx(24.5)  # a purchase without a value counts 0
    bob = store.profiles.get("bob")
    assert (bob["event_count"], bob["purchase_count"], bob["revenue"]) == (1, 0, 0.0)
    # Updating attributes later keeps the aggregates.
    store.profiles.upsert_users([{"user_id": "alice", "country": "BE"}])
    alice = store.profiles.get("alice")
    assert alice["country"] == "BE" and alice["event_count"] == 5
    assert store.profiles.count() == 2


def test_profiles_match_events_in_the_database(engine, make_events):
    EventStore(engine).append(make_events(300, users=7))
    with read_session(engine) as s:
        truth = dict(s.execute(select(Event.user_id, func.count()).group_by(Event.user_id)).all())
        stored = dict(s.execute(select(UserProfile.user_id, UserProfile.event_count)).all())
    assert stored == truth and sum(truth.values()) == 300


def test_frame_round_trip_through_export(store):
    raw = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "u3"],
            "item_id": ["a", "b", "", "c"],
            "timestamp": [1_700_000_000, "2023-11-14T22:14:00Z", 1_700_000_100, 1_700_000_200],
            "event_type": ["view", "purchase", "open", "add_to_cart"],
            "quantity": [1, 2, 1, 3],
            "value": [None, 9.99, None, 1.5],
            "session_id": ["s1", "", "s1", "s3"],
            "properties": ['{"b": 1, "a": 2}', "", "{}", '{"x": "y"}'],
        }
    )
    frame = validate_frame(raw, EVENTS)
    frame["event_id"] = ["f1", "f2", "f3", "f4"]
    assert store.events.append(frame).inserted == 4
    assert store.events.append(frame).duplicates == 4
    exported = store.events.export_frame()
    expected = frame.drop(columns="event_id").sort_values("timestamp", kind="stable")
    pd.testing.assert_frame_equal(exported, expected.reset_index(drop=True), check_dtype=True)
    later = store.events.export_frame(since=exported["timestamp"].iloc[2].to_pydatetime())
    assert list(later["user_id"]) == ["u1", "u3"]


def test_frame_without_timezone_is_refused(store):
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": ["2024-01-01"]})
    with pytest.raises(DataValidationError, match="validate_frame"):
        store.events.append(frame)


def test_export_excludes_erased_users(store, make_events):
    store.events.append(make_events(30, users=3))
    store.erase_user("user-1", actor="test")
    # Events of the erased user re-delivered afterwards stay out of training data.
    store.events.append([r | {"event_id": f"late{i}"} for i, r in enumerate(make_events(3))])
    exported = store.events.export_frame()
    assert "user-1" not in set(exported["user_id"])
    assert set(exported["user_id"]) == {"user-0", "user-2"}
    assert len(exported) == 20 + 2


def test_thousand_events_append_quickly(store, make_events):
    records = make_events(1000, users=50)
    started = time.perf_counter()
    result = store.events.append(records)
    elapsed = time.perf_counter() - started
    assert result.inserted == 1000
    assert elapsed < 2.0, f"appending 1000 events took {elapsed:.2f}s"


def test_empty_append_and_bad_limit(store):
    assert store.events.append([]).inserted == 0
    assert store.events.export_frame().columns.tolist() == EVENTS.names
    with pytest.raises(ValueError, match="limit"):
        store.events.recent("u", limit=0)


def test_profile_store_rejects_bad_users(engine):
    with pytest.raises(DataValidationError) as err:
        ProfileStore(engine).upsert_users([{"user_id": "ok"}, {"user_id": " "}])
    assert (err.value.row, err.value.column) == (2, "user_id")
    with pytest.raises(DataValidationError, match="JSON object"):
        ProfileStore(engine).upsert_users([{"user_id": "u", "consents": "[true]"}])


def test_concurrent_writers_lose_nothing(store_db, make_events):
    """Writers in parallel (separate engines, overlapping users) neither fail nor lose events."""
    writers, batches, errors = 4, 8, []
    barrier = threading.Barrier(writers)

    def write(w: int) -> None:
        events_store = EventStore(store_db.engine())
        try:
            barrier.wait()
            for b in range(batches):
                events_store.append(make_events(50, users=5, prefix=f"w{w}b{b}-"))
        except Exception as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert EventStore(store_db.main).count() == writers * batches * 50
    profiles = ProfileStore(store_db.main)
    assert sum(profiles.get(f"user-{u}")["event_count"] for u in range(5)) == writers * batches * 50


def test_validate_event_normalises_one_record(t0):
    row = validate_event(
        {"user_id": "u", "event_type": "open", "timestamp": "2024-03-01T12:00:00+01:00",
         "properties": '{"campaign": "c1"}', "value": 3, "session_id": ""},
        row=7,
        source="<request>",
    )  # fmt: skip
    assert row["timestamp"] == t0 - timedelta(hours=1) and row["timestamp"].tzinfo == UTC
    assert row["item_id"] is None and row["session_id"] is None and row["quantity"] == 1
    assert row["properties"] == {"campaign": "c1"} and row["value"] == 3.0
    with pytest.raises(DataValidationError) as err:
        validate_event({"user_id": "u", "item_id": "i"}, row=7, source="<request>")
    assert str(err.value) == (
        "<request>, row 7, column 'timestamp': missing required field 'timestamp'"
    )


def test_append_refuses_the_whole_batch_naming_the_first_bad_record(store, t0):
    good = {"user_id": "u", "item_id": "i", "timestamp": t0}
    with pytest.raises(DataValidationError) as err:
        store.events.append([good, {**good, "colour": "red"}])
    assert (err.value.row, err.value.column) == (2, "colour")
    assert "unknown field 'colour'" in err.value.problem
    assert store.events.count() == 0


def test_users_frame_upsert(store):
    users = validate_frame(
        pd.DataFrame(
            {"user_id": ["a", "b"], "email": ["a@x.org", ""], "consents": ['{"sms": false}', ""]}
        ),
        USERS,
    )
    assert store.profiles.upsert_users(users) == 2
    assert store.profiles.get("a")["consents"] == {"sms": False}
    assert store.profiles.get("b")["email"] is None and store.profiles.get("b")["event_count"] == 0
