"""Bad CSV files: each is rejected with one clear, one-line error naming file, row and column."""

from __future__ import annotations

import pytest

from recsys.data.errors import DataValidationError
from recsys.data.loaders import load_events, load_items, load_users

HEAD = "user_id,item_id,timestamp"


def test_missing_column(write, check_error):
    path = write("e.csv", "user_id,timestamp\n1,1600000000\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 0, "item_id", "missing required column(s) 'item_id'", "'user_id'")


def test_unparsable_timestamp(write, check_error):
    path = write("e.csv", f"{HEAD}\n1,2,1600000000\n1,3,yesterday\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "timestamp", "cannot parse timestamp 'yesterday'", "ISO-8601")


def test_negative_price(write, check_error):
    path = write("i.csv", "item_id,price\na,1.0\nb,2\nc,-2.5\n")
    with pytest.raises(DataValidationError) as exc:
        load_items(path)
    check_error(exc, path, 3, "price", "price must be >= 0, got -2.5")


def test_negative_quantity(write, check_error):
    path = write("e.csv", f"{HEAD},quantity\n1,2,1600000000,1\n1,3,1600000001,-1\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "quantity", "quantity must be >= 0, got -1")


def test_fractional_quantity(write, check_error):
    path = write("e.csv", f"{HEAD},quantity\n1,2,1600000000,1.5\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 1, "quantity", "whole number, got 1.5")


def test_non_numeric_value(write, check_error):
    path = write("e.csv", f"{HEAD},value\n1,2,1600000000,9.99\n1,3,1600000000,cheap\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "value", "'cheap' is not a number")


@pytest.mark.parametrize("blank", ["", "   ", "null", "NaN"])
def test_empty_user_id(write, check_error, blank):
    path = write("e.csv", f"{HEAD}\n1,2,1600000000\n{blank},2,1600000000\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "user_id", "empty user_id")


def test_empty_item_id(write, check_error):
    path = write("e.csv", f"{HEAD},event_type\n1,,1600000000,view\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 1, "item_id", "empty item_id")


def test_open_events_need_no_item(write):
    path = write("e.csv", f"{HEAD},event_type\n1,,1600000000,open\n1,2,1600000000,view\n")
    assert load_events(path)["item_id"].tolist() == ["", "2"]


def test_unknown_event_type(write, check_error):
    path = write("e.csv", f"{HEAD},event_type\n1,2,1600000000,view\n1,2,1600000000,like\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "event_type", "unknown event type 'like'", "add_to_cart")


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


def test_non_utf8_bytes(write, check_error):
    path = write("i.csv", "item_id,title\na,cafe\nb,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataValidationError) as exc:
        load_items(path)
    check_error(exc, path, 2, "title", "line 3 is not valid UTF-8", "0xe9", "re-encode")


def test_non_utf8_in_header(write, check_error):
    path = write("i.csv", "item_id,t\xeftle\na,b\n".encode("latin-1"))
    with pytest.raises(DataValidationError) as exc:
        load_items(path)
    check_error(exc, path, 0, None, "line 1 is not valid UTF-8")


def test_utf8_with_bom_and_crlf(write):
    path = write("e.csv", f"\ufeff{HEAD}\r\n1,2,1600000000\r\n")
    frame = load_events(path)
    assert frame["user_id"].tolist() == ["1"] and frame["item_id"].tolist() == ["2"]


def test_row_with_too_many_fields(write, check_error):
    path = write("e.csv", f"{HEAD}\n1,2,1600000000\n1,2,1600000000,extra\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, None, "line 3 has 4 fields where 3 are expected", "quote values")


def test_row_with_too_few_fields(write, check_error):
    path = write("e.csv", f"{HEAD}\n1,2,1600000000\n1,2\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "timestamp", "line 3 has 2 field(s) where 3 are expected")


def test_unterminated_quote(write, check_error):
    path = write("e.csv", f'{HEAD}\n1,2,1600000000\n"1,2,1600000000\n')
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, None, "never closed")


def test_quoted_values_may_hold_delimiters_and_newlines(write):
    path = write("i.csv", 'item_id,title\na,"Salt, coarse"\nb,"two\nlines"\n')
    assert load_items(path)["title"].tolist() == ["Salt, coarse", "two\nlines"]


def test_empty_file(write, check_error):
    path = write("e.csv", "")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, None, None, "file is empty")


def test_whitespace_only_file(write, check_error):
    path = write("e.csv", "\n  \n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, None, None, "file is empty")


def test_header_only_file(write, check_error):
    path = write("e.csv", f"{HEAD}\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, None, None, "has a header but no rows")


def test_duplicate_header_column(write, check_error):
    path = write("e.csv", f"{HEAD},user_id\n1,2,1600000000,3\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 0, "user_id", "appears twice in the header")


def test_unnamed_header_column(write, check_error):
    path = write("e.csv", f"{HEAD},\n1,2,1600000000,\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 0, "", "header field 4 has no name")


def test_duplicate_item_ids(write, check_error):
    path = write("i.csv", "item_id,title\na,x\nb,y\na,z\n")
    with pytest.raises(DataValidationError) as exc:
        load_items(path)
    check_error(exc, path, 3, "item_id", "duplicate item_id 'a'")


def test_duplicate_user_ids(write, check_error):
    path = write("u.csv", "user_id,email\n7,a@x.org\n7,b@x.org\n")
    with pytest.raises(DataValidationError) as exc:
        load_users(path)
    check_error(exc, path, 2, "user_id", "duplicate user_id '7'")


def test_invalid_json_attributes(write, check_error):
    path = write("i.csv", 'item_id,attributes\na,"{""k"": 1}"\nb,{bad\n')
    with pytest.raises(DataValidationError) as exc:
        load_items(path)
    check_error(exc, path, 2, "attributes", "invalid JSON")


def test_json_that_is_not_an_object(write, check_error):
    path = write("e.csv", f"{HEAD},properties\n1,2,1600000000,[1]\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 1, "properties", "must be a JSON object", "got a JSON array")


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


def test_first_bad_row_is_reported_across_problems(write, check_error):
    # Row 3 is unparsable and row 2 out of range: the earlier row wins within the column.
    path = write("e.csv", f"{HEAD}\n1,2,1600000000\n1,2,1600000000000\n1,2,soon\n")
    with pytest.raises(DataValidationError) as exc:
        load_events(path)
    check_error(exc, path, 2, "timestamp", "milliseconds")


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
