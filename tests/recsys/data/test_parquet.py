"""Parquet files with typed columns: ints, floats with NaN, datetimes, bools, structs, maps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.errors import DataValidationError
from recsys.data.loaders import load_events, load_items

TS = [1_600_000_000, 1_600_000_001]


@pytest.fixture
def parquet(tmp_path):
    def _write(name: str, columns: dict) -> str:
        path = tmp_path / name
        pq.write_table(pa.table(columns), path)
        return path

    return _write


def test_integer_ids_and_unix_seconds(parquet):
    frame = load_events(
        parquet("e.parquet", {"user_id": [1, 2], "item_id": [10, 20], "timestamp": TS})
    )
    assert frame["user_id"].tolist() == ["1", "2"] and frame["item_id"].tolist() == ["10", "20"]
    assert frame["timestamp"].iloc[1] == pd.Timestamp("2020-09-13 12:26:41", tz="UTC")


def test_float_ids_lose_their_point_zero(parquet):
    path = parquet("e.parquet", {"user_id": [1.0, 2.0], "item_id": [10.0, 20.0], "timestamp": TS})
    assert load_events(path)["item_id"].tolist() == ["10", "20"]


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime_columns(parquet, unit, tz):
    moment = dt.datetime(2020, 1, 1, 12, 0, 0)
    stamps = pa.array([moment, moment], pa.timestamp(unit, tz=tz))
    path = parquet("e.parquet", {"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": stamps})
    frame = load_events(path)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    # pyarrow stores tz-aware datetimes as UTC instants; naive ones are taken as UTC
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2020-01-01 12:00", tz="UTC")


def test_dates(parquet):
    path = parquet(
        "e.parquet", {"user_id": ["a"], "item_id": ["x"], "timestamp": [dt.date(2020, 1, 2)]}
    )
    assert load_events(path)["timestamp"].iloc[0] == pd.Timestamp("2020-01-02", tz="UTC")


def test_bools_with_nulls_take_the_default(parquet):
    path = parquet("i.parquet", {"item_id": ["a", "b", "c"], "in_stock": [True, False, None]})
    assert load_items(path)["in_stock"].tolist() == [True, False, True]


def test_floats_with_nan(parquet):
    path = parquet("i.parquet", {"item_id": ["a", "b"], "price": [1.5, float("nan")]})
    price = load_items(path)["price"]
    assert price.iloc[0] == 1.5 and np.isnan(price.iloc[1])


def test_null_quantity_takes_the_default(parquet):
    qty = pa.array([None, 3], pa.int64())
    path = parquet(
        "e.parquet", {"user_id": [1, 2], "item_id": [1, 2], "timestamp": TS, "quantity": qty}
    )
    frame = load_events(path)
    assert frame["quantity"].tolist() == [1, 3] and frame["quantity"].dtype == np.int64


@pytest.mark.parametrize(
    "properties",
    [
        pa.array([{"a": 1}]),  # struct
        pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64())),  # map
        pa.array(['{"a": 1}']),  # JSON text
    ],
)
def test_json_columns(parquet, properties):
    path = parquet(
        "e.parquet", {"user_id": [1], "item_id": [1], "timestamp": TS[:1], "properties": properties}
    )
    assert load_events(path)["properties"].tolist() == ['{"a":1}']


def test_dictionary_encoded_strings(parquet):
    path = parquet(
        "e.parquet",
        {
            "user_id": pa.array(["a", "b"]).dictionary_encode(),
            "item_id": ["x", "y"],
            "timestamp": TS,
            "event_type": pa.array(["VIEW", "purchase"]).dictionary_encode(),
        },
    )
    frame = load_events(path)
    assert frame["user_id"].tolist() == ["a", "b"]
    assert frame["event_type"].tolist() == ["view", "purchase"]


def test_column_mapping(parquet):
    path = parquet("e.parquet", {"customer": ["c"], "sku": ["s"], "ts": TS[:1]})
    frame = load_events(path, columns={"customer": "user_id", "sku": "item_id", "ts": "timestamp"})
    assert frame[["user_id", "item_id"]].values.tolist() == [["c", "s"]]


def test_extra_columns_are_not_read(parquet):
    path = parquet(
        "e.parquet",
        {"user_id": ["a"], "item_id": ["x"], "timestamp": TS[:1], "blob": [[{"deep": [1]}]]},
    )
    assert "blob" not in load_events(path).columns


def test_dictionary_encoded_bad_value_names_its_row(parquet, check_error):
    kinds = pa.array(["view", "view", "like", "like"]).dictionary_encode()
    ids = pa.array(["a", "b", "", "c"]).dictionary_encode()
    path = parquet(
        "e.parquet",
        {"user_id": ids, "item_id": ["x"] * 4, "timestamp": TS * 2, "event_type": kinds},
    )
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 3, "user_id", "empty user_id")
    with pytest.raises(DataValidationError) as exc:
        load_events(path, columns={"user_id": "session_id", "item_id": "user_id"})
    check_error(exc, path, 0, "item_id", "missing required column(s) 'item_id'")
    fixed = parquet(
        "f.parquet",
        {"user_id": ["a"] * 4, "item_id": ["x"] * 4, "timestamp": TS * 2, "event_type": kinds},
    )
    with pytest.raises(DataValidationError) as exc:
        load_events(fixed)
    check_error(exc, fixed, 3, "event_type", "unknown event type 'like'", "1 more row(s)")


def events(user_id, item_id=("x",), timestamp=TS[:1], **more) -> dict:
    return {"user_id": user_id, "item_id": item_id, "timestamp": timestamp, **more}


DAY, FAR = dt.datetime(2020, 1, 1), dt.datetime(3000, 1, 1)
# (id, loader, columns, bad row (0: header, None: the file), column, words in the error)
REJECTED = [
    ("nan-float-id", load_events, events([1.0, None], ["a", "b"], TS), 2, "user_id",
     ("empty user_id",)),
    ("missing-datetime", load_events,
     events(["a", "b"], ["x", "y"], pa.array([DAY, None], pa.timestamp("us"))), 2, "timestamp",
     ("missing timestamp",)),
    ("datetime-beyond-nanoseconds", load_events,
     events(["a", "b"], ["x", "y"], pa.array([DAY, FAR], pa.timestamp("us"))), 2, "timestamp",
     ("outside 1970..2200",)),
    ("millisecond-integers", load_events, events([1], [2], [1_600_000_000_000]), 1, "timestamp",
     ("looks like milliseconds",)),
    ("boolean-timestamp", load_events, events([1], [2], [True]), 1, "timestamp",
     ("got a boolean",)),
    ("list-as-id", load_events, events([[1]]), 1, "user_id", ("got a JSON array",)),
    ("infinite-price", load_items, {"item_id": ["a", "b"], "price": [1.5, float("inf")]}, 2,
     "price", ("price must be finite",)),
    ("negative-price", load_items, {"item_id": ["a", "b"], "price": [1.5, -1.0]}, 2, "price",
     ("price must be >= 0, got -1",)),
    ("negative-quantity", load_events,
     events([1, 2], [1, 2], TS, quantity=pa.array([1, -3], pa.int32())), 2, "quantity",
     ("quantity must be >= 0, got -3",)),
    ("missing-column", load_events, {"user_id": ["a"], "timestamp": TS[:1]}, 0, "item_id",
     ("missing required column(s) 'item_id'",)),
    ("no-rows", load_events,
     {n: pa.array([], pa.string()) for n in ("user_id", "item_id", "timestamp")}, None, None,
     ("file has no rows",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("load", "columns", "row", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTED],
)
def test_bad_file_is_rejected_naming_row_and_column(
    parquet, check_error, load, columns, row, column, words
):
    path = parquet("bad.parquet", columns)
    with pytest.raises(DataValidationError) as exc:
        load(path)
    check_error(exc, path, row, column, *words)


@pytest.mark.parametrize(
    ("content", "columns", "row", "column", "words"),
    [
        pytest.param(b"PAR1 this is not parquet", None, None, None, ("cannot read Parquet",),
                     id="corrupt-file"),
        pytest.param(None, {"client": "user_id"}, 0, "client", ("column map names 'client'",),
                     id="mapping-of-an-absent-column"),
    ],
)  # fmt: skip
def test_bad_file_or_column_map(parquet, write, check_error, content, columns, row, column, words):
    if content is None:
        path = parquet("e.parquet", {"customer": ["c"], "sku": ["s"], "ts": TS[:1]})
    else:
        path = write("e.parquet", content)
    with pytest.raises(DataValidationError) as exc:
        load_events(path, columns=columns)
    check_error(exc, path, row, column, *words)
