"""Good files: canonical frames, column mapping, timestamps, all-or-nothing loading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import EVENTS, ITEMS, USERS
from recsys.data.errors import DataValidationError
from recsys.data.loaders import load_events, load_items, load_users
from recsys.data.validate import validate_frame

HEAD = "user_id,item_id,timestamp"


def test_canonical_events_frame(write):
    path = write(
        "e.csv",
        f"{HEAD},event_type,quantity,value,session_id,properties,extra\n"
        '007,sku-1,1600000000,purchase,2,9.5,s1,"{""coupon"": ""X""}",ignored\n'
        " 8 , sku-2 ,2020-09-13T12:26:41Z,,,,,,\n",
    )
    frame = load_events(path)
    assert list(frame.columns) == EVENTS.names
    assert frame["user_id"].tolist() == ["007", "8"]  # ids are text: zeros kept, spaces gone
    assert frame["item_id"].tolist() == ["sku-1", "sku-2"]
    assert frame["timestamp"].tolist() == [
        pd.Timestamp("2020-09-13 12:26:40", tz="UTC"),
        pd.Timestamp("2020-09-13 12:26:41", tz="UTC"),
    ]
    assert frame["event_type"].tolist() == ["purchase", "interaction"]  # default type
    assert frame["quantity"].tolist() == [2, 1]  # default quantity
    assert frame["value"].iloc[0] == 9.5 and np.isnan(frame["value"].iloc[1])
    assert frame["session_id"].tolist() == ["s1", ""]
    assert frame["properties"].tolist() == ['{"coupon":"X"}', "{}"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["quantity"].dtype == np.int64


def test_surrounding_whitespace_is_stripped_from_ids():
    raw = pd.DataFrame(
        {
            "user_id": ["\tu1", "u2\n", "\u00a0u3", "u 4"],
            "item_id": ["a", " b ", "c", "d"],
            "timestamp": [1, 2, 3, 4],
        }
    )
    frame = validate_frame(raw, EVENTS)
    assert frame["user_id"].tolist() == ["u1", "u2", "u3", "u 4"]
    assert frame["item_id"].tolist() == ["a", "b", "c", "d"]


def test_items_and_users_frames(write):
    items = load_items(write("i.csv", "item_id,title,price\n1,Tea,2.50\n2,Cup,\n"))
    assert list(items.columns) == ITEMS.names
    assert items["in_stock"].tolist() == [True, True]  # default
    assert items["price"].iloc[0] == 2.5 and np.isnan(items["price"].iloc[1])
    users = load_users(write("u.csv", 'user_id,country,consents\n1,DE,"{""email"": true}"\n'))
    assert list(users.columns) == USERS.names
    assert users["consents"].tolist() == ['{"email":true}']


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-01T00:00:00+02:00", "2019-12-31 22:00:00"),
        ("2020-01-01T00:00:00-05:30", "2020-01-01 05:30:00"),
        ("2020-01-01T10:00:00Z", "2020-01-01 10:00:00"),
        ("2020-01-01 10:00:00", "2020-01-01 10:00:00"),  # naive means UTC
        ("2020-01-01", "2020-01-01 00:00:00"),
        ("2020-01-01T10:00:00.250+00:00", "2020-01-01 10:00:00.250"),
        ("1577872800", "2020-01-01 10:00:00"),  # unix seconds
        ("1577872800.5", "2020-01-01 10:00:00.5"),
    ],
)
def test_timestamp_formats(write, text, expected):
    frame = load_events(write("e.csv", f"{HEAD}\n1,2,{text}\n"))
    assert frame["timestamp"].iloc[0] == pd.Timestamp(expected, tz="UTC")


def test_mixed_timestamp_formats_in_one_file(write):
    path = write(
        "e.csv", f"{HEAD}\n1,2,1577872800\n1,3,2020-01-01T12:00:00+02:00\n1,4,2020-01-01\n"
    )
    assert load_events(path)["timestamp"].tolist() == [
        pd.Timestamp("2020-01-01 10:00", tz="UTC"),
        pd.Timestamp("2020-01-01 10:00", tz="UTC"),
        pd.Timestamp("2020-01-01 00:00", tz="UTC"),
    ]


def test_column_mapping(write):
    path = write("e.csv", "customer,product,when,kind\nc1,p1,1600000000,view\n")
    frame = load_events(
        path,
        columns={
            "customer": "user_id",
            "product": "item_id",
            "when": "timestamp",
            "kind": "event_type",
        },
    )
    assert frame[["user_id", "item_id", "event_type"]].values.tolist() == [["c1", "p1", "view"]]


# (id, content, column map, bad row (0: header), column, words in the error)
REJECTED = [
    *[
        (f"timestamp-{text}", f"{HEAD}\n1,2,{text}\n", None, 1, "timestamp", words)
        for text, words in [
            ("1577872800000", ("looks like milliseconds", "divide by 1000")),
            ("-5", ("out of range for unix seconds",)),
            ("1969-12-31T00:00:00Z", ("outside 1970..2200",)),
            ("2020-13-01", ("cannot parse timestamp '2020-13-01'",)),
        ]
    ],
    ("mapping-of-an-absent-column", f"{HEAD}\n1,2,1600000000\n", {"customer": "user_id"}, 0,
     "customer", ("column map names 'customer'", "'user_id'")),
    ("mapping-onto-an-existing-column", f"{HEAD},customer\n1,2,1600000000,c\n",
     {"customer": "user_id"}, 0, "user_id", ("appears more than once",)),
    ("errors-name-the-canonical-column", "customer,item_id,timestamp\n,2,1600000000\n",
     {"customer": "user_id"}, 1, "user_id", ("empty user_id",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "columns", "row", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTED],
)
def test_bad_events_are_rejected_naming_row_and_column(
    write, check_error, content, columns, row, column, words
):
    path = write("e.csv", content)
    with pytest.raises(DataValidationError) as exc:
        load_events(path, columns=columns)
    check_error(exc, path, row, column, *words)


def test_nothing_is_partially_imported(write, check_error):
    """A bad last row fails the whole file: no frame is returned, and a second load of the
    fixed file returns every row."""
    good = "".join(f"u{i},i{i % 7},{1_600_000_000 + i}\n" for i in range(5000))
    path = write("e.csv", f"{HEAD}\n{good}u,i,not-a-time\n")
    result = None
    with pytest.raises(DataValidationError) as exc:
        result = load_events(path)
    assert result is None
    check_error(exc, path, 5001, "timestamp")
    path.write_text(f"{HEAD}\n{good}")
    assert len(load_events(path)) == 5000


def test_validate_frame_checks_a_frame_in_memory():
    raw = pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "timestamp": [1, 2]})
    frame = validate_frame(raw, EVENTS)
    assert frame["user_id"].tolist() == ["1", "2"]
    with pytest.raises(DataValidationError, match=r"<frame>, row 2, column 'item_id'"):
        validate_frame(raw.assign(item_id=["a", None]), EVENTS)


def test_validate_frame_ignores_the_frames_index():
    raw = pd.DataFrame(
        {"user_id": ["a", ""], "item_id": ["x", "y"], "timestamp": [1, 2]}, index=[10, 20]
    )
    with pytest.raises(DataValidationError, match="row 2,"):
        validate_frame(raw, EVENTS)
