"""Bad CSV files: each is rejected with one clear, one-line error naming file, row and column."""

from __future__ import annotations

import pytest

from recsys.data.errors import DataValidationError
from recsys.data.loaders import load_events, load_items, load_users

HEAD = "user_id,item_id,timestamp"


# (id, loader, file name, content, bad row (0: header, None: the file), column, words in the error)
REJECTED = [
    ("missing-column", load_events, "e.csv", "user_id,timestamp\n1,1600000000\n", 0, "item_id",
     ("missing required column(s) 'item_id'", "'user_id'")),
    ("unparsable-timestamp", load_events, "e.csv", f"{HEAD}\n1,2,1600000000\n1,3,yesterday\n", 2,
     "timestamp", ("cannot parse timestamp 'yesterday'", "ISO-8601")),
    ("negative-price", load_items, "i.csv", "item_id,price\na,1.0\nb,2\nc,-2.5\n", 3, "price",
     ("price must be >= 0, got -2.5",)),
    ("negative-quantity", load_events, "e.csv",
     f"{HEAD},quantity\n1,2,1600000000,1\n1,3,1600000001,-1\n", 2, "quantity",
     ("quantity must be >= 0, got -1",)),
    ("fractional-quantity", load_events, "e.csv", f"{HEAD},quantity\n1,2,1600000000,1.5\n", 1,
     "quantity", ("whole number, got 1.5",)),
    ("non-numeric-value", load_events, "e.csv",
     f"{HEAD},value\n1,2,1600000000,9.99\n1,3,1600000000,cheap\n", 2, "value",
     ("'cheap' is not a number",)),
    *[
        (f"empty-user-id-{blank!r}", load_events, "e.csv",
         f"{HEAD}\n1,2,1600000000\n{blank},2,1600000000\n", 2, "user_id", ("empty user_id",))
        for blank in ["", "   ", "null", "NaN"]
    ],
    ("empty-item-id", load_events, "e.csv", f"{HEAD},event_type\n1,,1600000000,view\n", 1,
     "item_id", ("empty item_id",)),
    ("unknown-event-type", load_events, "e.csv",
     f"{HEAD},event_type\n1,2,1600000000,view\n1,2,1600000000,like\n", 2, "event_type",
     ("unknown event type 'like'", "add_to_cart")),
    ("non-utf8-bytes", load_items, "i.csv", "item_id,title\na,cafe\nb,caf\xe9\n".encode("latin-1"),
     2, "title", ("line 3 is not valid UTF-8", "0xe9", "re-encode")),
    ("non-utf8-in-header", load_items, "i.csv", "item_id,t\xeftle\na,b\n".encode("latin-1"), 0,
     None, ("line 1 is not valid UTF-8",)),
    ("too-many-fields", load_events, "e.csv", f"{HEAD}\n1,2,1600000000\n1,2,1600000000,extra\n",
     2, None, ("line 3 has 4 fields where 3 are expected", "quote values")),
    ("too-few-fields", load_events, "e.csv", f"{HEAD}\n1,2,1600000000\n1,2\n", 2, "timestamp",
     ("line 3 has 2 field(s) where 3 are expected",)),
    ("unterminated-quote", load_events, "e.csv", f'{HEAD}\n1,2,1600000000\n"1,2,1600000000\n', 2,
     None, ("never closed",)),
    ("empty-file", load_events, "e.csv", "", None, None, ("file is empty",)),
    ("whitespace-only-file", load_events, "e.csv", "\n  \n", None, None, ("file is empty",)),
    ("header-only-file", load_events, "e.csv", f"{HEAD}\n", None, None,
     ("has a header but no rows",)),
    ("duplicate-header-column", load_events, "e.csv", f"{HEAD},user_id\n1,2,1600000000,3\n", 0,
     "user_id", ("appears twice in the header",)),
    ("unnamed-header-column", load_events, "e.csv", f"{HEAD},\n1,2,1600000000,\n", 0, "",
     ("header field 4 has no name",)),
    ("duplicate-item-ids", load_items, "i.csv", "item_id,title\na,x\nb,y\na,z\n", 3, "item_id",
     ("duplicate item_id 'a'",)),
    ("duplicate-user-ids", load_users, "u.csv", "user_id,email\n7,a@x.org\n7,b@x.org\n", 2,
     "user_id", ("duplicate user_id '7'",)),
    ("invalid-json", load_items, "i.csv", 'item_id,attributes\na,"{""k"": 1}"\nb,{bad\n', 2,
     "attributes", ("invalid JSON",)),
    ("json-not-an-object", load_events, "e.csv", f"{HEAD},properties\n1,2,1600000000,[1]\n", 1,
     "properties", ("must be a JSON object", "got a JSON array")),
    ("non-boolean", load_items, "i.csv", "item_id,in_stock\na,true\nb,maybe\n", 2, "in_stock",
     ("'maybe' is not a boolean",)),
    # row 3 is unparsable and row 2 out of range: the earlier row wins within the column
    ("first-bad-row-wins", load_events, "e.csv",
     f"{HEAD}\n1,2,1600000000\n1,2,1600000000000\n1,2,soon\n", 2, "timestamp",
     ("milliseconds",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("load", "name", "content", "row", "column", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTED],
)
def test_bad_file_is_rejected_naming_row_and_column(
    write, check_error, load, name, content, row, column, words
):
    path = write(name, content)
    with pytest.raises(DataValidationError) as exc:
        load(path)
    check_error(exc, path, row, column, *words)


def test_open_events_need_no_item(write):
    path = write("e.csv", f"{HEAD},event_type\n1,,1600000000,open\n1,2,1600000000,view\n")
    assert load_events(path)["item_id"].tolist() == ["", "2"]


def test_event_types_are_case_insensitive(write):
    path = write("e.csv", f"{HEAD},event_type\n1,2,1600000000,VIEW\n1,2,1600000000, Purchase\n")
    assert load_events(path)["event_type"].tolist() == ["view", "purchase"]


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_wrong_delimiter(write, check_error, sep, name):
    path = write("e.csv", f"user_id{sep}item_id{sep}timestamp\n1{sep}2{sep}1600000000\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 0, "user_id", f"separated by {name}", "pass the matching delimiter")
    assert len(load_events(path, delimiter=sep)) == 1  # the hint works


def test_utf8_with_bom_and_crlf(write):
    path = write("e.csv", f"\ufeff{HEAD}\r\n1,2,1600000000\r\n")
    frame = load_events(path)
    assert frame["user_id"].tolist() == ["1"] and frame["item_id"].tolist() == ["2"]


def test_quoted_values_may_hold_delimiters_and_newlines(write):
    path = write("i.csv", 'item_id,title\na,"Salt, coarse"\nb,"two\nlines"\n')
    assert load_items(path)["title"].tolist() == ["Salt, coarse", "two\nlines"]


def test_json_is_canonicalised(write):
    path = write("e.csv", f'{HEAD},properties\n1,2,1600000000,"{{""b"": 1, ""a"": [1]}}"\n1,2,1,\n')
    assert load_events(path)["properties"].tolist() == ['{"a":[1],"b":1}', "{}"]


def test_booleans(write, check_error):
    path = write("i.csv", "item_id,in_stock\na,true\nb,No\nc,1\nd,\ne,F\nf,YES\n")
    assert load_items(path)["in_stock"].tolist() == [True, False, True, True, False, True]
    bad = write("j.csv", "item_id,in_stock\na,true\nb,maybe\n")
    with pytest.raises(DataValidationError) as exc:
        load_items(bad)
    check_error(exc, bad, 2, "in_stock", "'maybe' is not a boolean")


def test_more_rows_with_the_same_problem_are_counted(write):
    path = write("e.csv", f"{HEAD},quantity\n1,2,1,-1\n1,2,1,-2\n1,2,1,-3\n")
    with pytest.raises(DataValidationError, match=r"row 1 \(line 2\), .*\(2 more row\(s\)"):
        load_events(path)


def test_errors_give_the_line_when_blank_lines_or_quoted_newlines_shift_it(write, check_error):
    # data row 3 ("u3") starts on line 7: a blank line and a two-line quoted value come before
    text = (
        f'{HEAD},session_id\nu1,a,1600000000,s\n\nu2,b,1600000000,"multi\nline"\n\nu3,c,later,s\n'
    )
    path = write("e.csv", text)
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    error = check_error(exc, path, 3, "timestamp", "row 3 (line 7)", "'later'")
    assert error.line == 7


@pytest.mark.parametrize(
    ("name", "problem"),
    [("missing.csv", "does not exist"), ("e.json", "unsupported file type '.json'")],
)
def test_file_level_problems(write, tmp_path, check_error, name, problem):
    path = tmp_path / name
    if name.endswith(".json"):
        path = write(name, "[]")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, None, None, problem)


def test_tsv_defaults_to_tabs(write):
    path = write("e.tsv", "user_id\titem_id\ttimestamp\n1\t2\t1600000000\n")
    assert load_events(path)["item_id"].tolist() == ["2"]
