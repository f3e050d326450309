"""The one event validator: record-level rules, store rows, and one record == one of a batch."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from recsys.data.errors import DataValidationError
from recsys.data.event_check import FIELDS, validate_event, validate_events

T0 = 1_600_000_000
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def event(**fields) -> dict:
    return {"user_id": "u1", "item_id": "i1", "timestamp": T0, **fields}


def test_valid_records_become_store_rows():
    rows, rejected = validate_events(
        [event(event_id=7, properties={"page": 2}), {"user_id": 5, "event_type": "open"}], now=NOW
    )
    assert rejected == []
    assert rows[0] == {
        "event_id": "7", "user_id": "u1", "item_id": "i1", "event_type": "interaction",
        "timestamp": datetime.fromtimestamp(T0, UTC), "quantity": 1, "value": None,
        "session_id": None, "properties": {"page": 2},
    }  # fmt: skip
    assert rows[1]["user_id"] == "5" and rows[1]["item_id"] is None
    assert rows[1]["timestamp"] == NOW


def test_unknown_fields_are_refused_naming_them():
    _, rejected = validate_events([event(colour="red"), event(colour="red", size=2)])
    assert [(r.field, r.problem.split(";")[0]) for r in rejected] == [
        ("colour", "unknown field 'colour'"),
        ("colour", "unknown fields 'colour', 'size'"),
    ]
    assert "put anything else under properties" in rejected[0].problem


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"properties": "x"}, "properties", 'must be a JSON object like {"key": "value"}'),
        ({"properties": [1]}, "properties", "must be a JSON object"),
        ({"properties": {"a": "b\x00"}}, "properties", "properties must not contain NUL"),
        ({"item_id": "i\ud800"}, "item_id", "item_id is not valid Unicode"),
        ({"user_id": "u" * 256}, "user_id", "user_id is longer than 255 characters"),
        ({"event_id": "e" * 129}, "event_id", "event_id is longer than 128 characters"),
        ({"event_id": True}, "event_id", "event_id must be text or a whole number"),
        ({"timestamp": datetime(2024, 1, 1)}, "timestamp", "has no time zone"),
        ({"timestamp": None}, "timestamp", "missing timestamp"),
        ({"quantity": -1}, "quantity", "quantity must be >= 0, got -1"),
    ],
)
def test_each_rule_names_the_field(change, field, words):
    _, rejected = validate_events([event(), event(**change)])
    assert [(r.index, r.field) for r in rejected] == [(1, field)]
    assert words in rejected[0].problem


def test_records_that_are_not_objects():
    rows, rejected = validate_events(["x", None, event()])
    assert len(rows) == 1 and [(r.index, r.field) for r in rejected] == [(0, None), (1, None)]
    assert rejected[0].problem == f"must be a JSON object with fields {', '.join(FIELDS)}"


def test_one_record_is_judged_as_in_a_batch():
    """validate_event raises exactly the batch's rejection of the same record."""
    records = [event(), event(user_id=""), event(colour=1), event(timestamp="2020-02-30")]
    rows, rejected = validate_events(records)
    by_index = {r.index: r for r in rejected}
    for i, record in enumerate(records):
        if i not in by_index:
            assert validate_event(record) == rows[0]
            continue
        with pytest.raises(DataValidationError) as err:
            validate_event(record, row=i + 1, source="<request>")
        assert (err.value.column, err.value.problem) == (by_index[i].field, by_index[i].problem)
        assert str(err.value).startswith(f"<request>, row {i + 1}, column ")


def test_a_thousand_events_validate_in_milliseconds():
    records = [
        event(user_id=i, item_id=f"sku{i % 50}", timestamp=T0 + i, properties={"p": i})
        for i in range(1000)
    ]
    records[500]["quantity"] = -1
    validate_events(records)  # warm up
    started = time.perf_counter()
    rows, rejected = validate_events(records)
    elapsed = time.perf_counter() - started
    assert len(rows) == 999 and [r.index for r in rejected] == [500]
    assert elapsed < 0.2, f"{elapsed * 1000:.1f} ms"  # ~15 ms on a quiet core; generous bound
