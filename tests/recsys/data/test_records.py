"""Per-record validation for the event API: valid records kept, invalid ones rejected."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from recsys.data import EVENTS, ITEMS
from recsys.data.records import Rejection, validate_records

T0 = 1_600_000_000


def event(**fields) -> dict:
    return {"user_id": "u1", "item_id": "i1", "timestamp": T0, **fields}


def test_all_valid_records_make_a_canonical_frame():
    records = [
        event(user_id=1, item_id=7, event_type="view"),
        event(timestamp="2020-09-13T14:26:40+02:00", properties={"b": 1, "a": [2]}),
        event(timestamp=T0 + 0.5, quantity=3, value=9.99, session_id="s"),
    ]
    frame, rejected = validate_records(records)
    assert rejected == []
    assert list(frame.columns) == EVENTS.names
    assert frame.index.tolist() == [0, 1, 2]
    assert frame["user_id"].tolist() == ["1", "u1", "u1"]
    assert frame["item_id"].tolist() == ["7", "i1", "i1"]
    assert frame["timestamp"].tolist() == [
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 0.5, unit="s", tz="UTC"),
    ]
    assert frame["event_type"].tolist() == ["view", "interaction", "interaction"]
    assert frame["quantity"].tolist() == [1, 1, 3]
    assert frame["properties"].tolist() == ["{}", '{"a":[2],"b":1}', "{}"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_invalid_records_are_rejected_one_by_one_and_valid_ones_kept():
    records = [
        event(),  # 0 ok
        event(user_id=""),  # 1
        event(timestamp="yesterday"),  # 2
        event(event_type="like"),  # 3
        event(quantity=-1),  # 4
        event(item_id="i2"),  # 5 ok
        event(timestamp=T0 * 1000),  # 6
        event(properties="[1, 2]"),  # 7
    ]
    frame, rejected = validate_records(records)
    assert frame.index.tolist() == [0, 5]  # original positions of the kept records
    assert frame["item_id"].tolist() == ["i1", "i2"]
    got = {r.index: (r.field, r.problem) for r in rejected}
    assert got == {
        1: ("user_id", "empty user_id"),
        2: ("timestamp", "cannot parse timestamp 'yesterday' (expected ISO-8601 or unix seconds)"),
        3: ("event_type", got[3][1]),
        4: ("quantity", "quantity must be >= 0, got -1"),
        6: ("timestamp", got[6][1]),
        7: ("properties", 'must be a JSON object like {"key": "value"}, got a JSON array'),
    }
    assert got[3][1].startswith("unknown event type 'like'; expected one of view")
    assert "milliseconds" in got[6][1]
    assert [r.index for r in rejected] == sorted(got)  # in submission order


def test_rejection_as_dict():
    _, rejected = validate_records([event(user_id=None)])
    assert [r.as_dict() for r in rejected] == [
        {"index": 0, "field": "user_id", "problem": "empty user_id"}
    ]
    assert isinstance(rejected[0], Rejection)


def test_missing_required_fields():
    _, rejected = validate_records([{"item_id": "i"}, {"user_id": "u", "item_id": "i"}])
    assert [(r.index, r.field, r.problem) for r in rejected] == [
        (0, "user_id", "missing required field 'user_id'; timestamp: missing required field "
         "'timestamp'"),
        (1, "timestamp", "missing required field 'timestamp'"),
    ]  # fmt: skip


def test_all_problems_of_a_record_are_listed_first_field_first():
    _, rejected = validate_records([event(user_id={"a": 1}, timestamp=True, quantity=1.5)])
    (rejection,) = rejected
    assert rejection.field == "user_id"
    assert rejection.problem == (
        "expected text or a whole number, got a JSON object; "
        "timestamp: expected ISO-8601 text or unix seconds, got a boolean; "
        "quantity: quantity must be a whole number, got 1.5"
    )


def test_records_that_are_not_objects():
    frame, rejected = validate_records(["user_id=u1", None, event(), [1, 2]])
    assert frame.index.tolist() == [2]
    assert [(r.index, r.field) for r in rejected] == [(0, None), (1, None), (3, None)]
    assert rejected[0].problem.startswith("must be a JSON object with fields user_id, item_id")


def test_unknown_fields_are_ignored():
    frame, rejected = validate_records([event(colour="red", nested={"x": [1]})])
    assert rejected == [] and "colour" not in frame.columns and len(frame) == 1


def test_item_may_be_absent_only_for_open_events():
    records = [
        {"user_id": "u", "timestamp": T0, "event_type": "open"},
        {"user_id": "u", "timestamp": T0, "event_type": "view"},
    ]
    frame, rejected = validate_records(records)
    assert frame.index.tolist() == [0] and frame["item_id"].tolist() == [""]
    assert [(r.index, r.field) for r in rejected] == [(1, "item_id")]
    assert rejected[0].problem.startswith("empty item_id")


def test_ids_and_numbers_in_several_json_shapes():
    records = [
        event(user_id=12345678901234567890),  # beyond int64, kept exactly
        event(user_id=42.0),  # integral float
        event(user_id=" u7 "),
        event(quantity="2", value="1.25"),  # numbers sent as text
        event(user_id=True),  # booleans are not ids
        event(quantity=True),  # nor quantities
    ]
    frame, rejected = validate_records(records)
    assert frame["user_id"].tolist() == ["12345678901234567890", "42", "u7", "u1"]
    assert frame.loc[3, "quantity"] == 2 and frame.loc[3, "value"] == 1.25
    assert {r.index: r.problem for r in rejected} == {
        4: "expected text or a whole number, got a boolean",
        5: "expected a number, got a boolean",
    }


def test_the_same_rules_as_files():
    """Anything the file loader rejects, the record validator rejects with the same words."""
    from recsys.data.errors import DataValidationError
    from recsys.data.validate import validate_frame

    bad = [event(quantity=-2), event(timestamp="2020-02-30"), event(event_type="buy")]
    _, rejected = validate_records(bad)
    for record, rejection in zip(bad, rejected, strict=True):
        with pytest.raises(DataValidationError) as exc:
            validate_frame(pd.DataFrame([record]), EVENTS)
        assert exc.value.problem == rejection.problem and exc.value.column == rejection.field


def test_empty_batch():
    frame, rejected = validate_records([])
    assert rejected == [] and frame.empty and list(frame.columns) == EVENTS.names


def test_other_schemas_and_duplicate_keys():
    records = [{"item_id": "a", "price": 2}, {"item_id": "a", "price": 3}, {"item_id": "b"}]
    frame, rejected = validate_records(records, ITEMS)
    assert frame["item_id"].tolist() == ["a", "b"] and frame.index.tolist() == [0, 2]
    assert [(r.index, r.field, r.problem) for r in rejected] == [
        (1, "item_id", "duplicate item_id 'a'")
    ]


def test_a_rejected_record_does_not_count_as_a_duplicate_key():
    records = [{"item_id": "a", "price": -1}, {"item_id": "a", "price": 3}]
    frame, rejected = validate_records(records, ITEMS)
    assert frame.index.tolist() == [1]
    assert [(r.index, r.field) for r in rejected] == [(0, "price")]


def test_a_thousand_records_validate_in_milliseconds():
    records = [
        event(user_id=i, item_id=f"sku{i % 50}", timestamp=T0 + i, properties={"p": i})
        for i in range(1000)
    ]
    records[500]["quantity"] = -1
    validate_records(records)  # warm up
    started = time.perf_counter()
    frame, rejected = validate_records(records)
    elapsed = time.perf_counter() - started
    assert len(frame) == 999 and [r.index for r in rejected] == [500]
    assert elapsed < 0.1, f"{elapsed * 1000:.1f} ms"  # ~5 ms on a quiet core; generous bound
