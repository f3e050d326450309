"""Data-set adapters: MovieLens (u.data, ratings.csv) and Groceries, small files and real ones."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsys.data import EVENTS, ITEMS, USERS
from recsys.data.adapters import ML_GENRES, load_dataset
from recsys.data.errors import DataValidationError


def _item_line(item_id: int, title: str, genres: set[str]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in ML_GENRES)
    return f"{item_id}|{title}|01-Jan-1995||http://x/{item_id}|{flags}\n"


def test_movielens_udata_with_items_and_users(tmp_path):
    (tmp_path / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t20\t5\t881250950\n1\t20\t3\t881250951\n"
    )
    items = _item_line(10, "Toy Story (1995)", {"Animation", "Comedy"}) + _item_line(
        20, "Caf\xe9 (1996)", set()
    )
    (tmp_path / "u.item").write_bytes(items.encode("latin-1"))  # the real file is latin-1
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    data = load_dataset(tmp_path / "u.data")
    assert data.name == "ml-100k"
    assert list(data.events.columns) == EVENTS.names
    assert data.events["user_id"].tolist() == ["1", "2", "1"]
    assert data.events["event_type"].tolist() == ["rate"] * 3
    assert data.events["value"].tolist() == [4.0, 5.0, 3.0]
    assert data.events["timestamp"].iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert list(data.items.columns) == ITEMS.names
    assert data.items["title"].tolist() == ["Toy Story (1995)", "Caf\xe9 (1996)"]
    assert data.items["category"].tolist() == ["Animation", "unknown"]
    assert json.loads(data.items["attributes"].iloc[0]) == {
        "genres": ["Animation", "Comedy"],
        "release_date": "01-Jan-1995",
    }
    assert list(data.users.columns) == USERS.names
    assert json.loads(data.users["attributes"].iloc[1]) == {
        "age": 53,
        "gender": "F",
        "occupation": "other",
        "zip": "94043",
    }


def test_movielens_udata_alone(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n")
    data = load_dataset(tmp_path / "u.data")
    assert data.items is None and data.users is None and len(data.events) == 1


def test_movielens_udata_bad_rows(tmp_path, check_error):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t4\t881250949\n2\t20\t5\n")
    with pytest.raises(DataValidationError) as exc:
        load_dataset(path)
    check_error(exc, path, 2, "timestamp", "line 2 has 3 field(s) where 4 are expected")
    path.write_text("1\t10\t4\t881250949\n\n2\t20\tfive\t881250949\n")  # no header; a blank line
    with pytest.raises(DataValidationError) as exc:
        load_dataset(path)
    check_error(exc, path, 2, "value", "row 2 (line 3)", "'five' is not a number")


def test_movielens_bad_genre_flag(tmp_path, check_error):
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n")
    line = _item_line(10, "Heat (1995)", {"Action"}).replace("|1|", "|x|")
    (tmp_path / "u.item").write_text(line)
    with pytest.raises(DataValidationError) as exc:
        load_dataset(tmp_path / "u.data")
    check_error(exc, tmp_path / "u.item", 1, "Action", "genre flag must be 0 or 1")


def test_movielens_ratings_csv_with_movies(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n31,Dangerous Minds (1995),Drama\n"
        '1029,"Dumbo, the (1941)",Animation|Children|Drama\n'
    )
    data = load_dataset(tmp_path / "ratings.csv")
    assert data.name == "movielens"
    assert data.events[["user_id", "item_id", "value"]].values.tolist() == [
        ["1", "31", 2.5],
        ["1", "1029", 3.0],
    ]
    assert data.items["title"].tolist() == ["Dangerous Minds (1995)", "Dumbo, the (1941)"]
    assert data.items["category"].tolist() == ["Drama", "Animation"]
    assert json.loads(data.items["attributes"].iloc[1]) == {
        "genres": ["Animation", "Children", "Drama"]
    }


def test_movies_csv_missing_a_column(tmp_path, check_error):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    (tmp_path / "movies.csv").write_text("movieId,name\n31,Heat\n")
    with pytest.raises(DataValidationError) as exc:
        load_dataset(tmp_path / "ratings.csv")
    check_error(exc, tmp_path / "movies.csv", 0, "title", "missing required column(s) 'title'")


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y"])
def test_groceries_baskets(tmp_path, fmt):
    july, january = (pd.Timestamp(d).strftime(fmt) for d in ("2015-07-21", "2015-01-05"))
    path = tmp_path / "Groceries_dataset.csv"
    path.write_text(
        "Member_number,Date,itemDescription,year\n"
        f"1808,{july},tropical fruit,2015\n1808,{july}, whole milk,2015\n"
        f"2552,{january},whole milk,2015\n"
    )
    data = load_dataset(path)
    assert data.name == "groceries"
    events = data.events
    assert events["event_type"].unique().tolist() == ["purchase"]
    assert events["timestamp"].iloc[0] == pd.Timestamp("2015-07-21", tz="UTC")
    assert events["timestamp"].iloc[2] == pd.Timestamp("2015-01-05", tz="UTC")  # day first
    assert events["session_id"].tolist() == ["1808@2015-07-21"] * 2 + ["2552@2015-01-05"]
    assert data.items["item_id"].tolist() == ["tropical fruit", "whole milk"]


def test_groceries_bad_date(tmp_path, check_error):
    path = tmp_path / "g.csv"
    path.write_text("Member_number,Date,itemDescription\n1,2015-07-21,milk\n2,someday,tea\n")
    with pytest.raises(DataValidationError) as exc:
        load_dataset(path)
    check_error(exc, path, 2, "Date", "cannot parse date", "'someday'")


def test_canonical_file_through_load_dataset(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("customer,item_id,timestamp\nc,i,1600000000\n")
    data = load_dataset(path, columns={"customer": "user_id"})
    assert data.name == "shop" and data.events["user_id"].tolist() == ["c"]


def test_real_movielens_100k(ml100k_path):
    data = load_dataset(ml100k_path)
    assert len(data.events) == 100_000
    assert data.events["user_id"].nunique() == 943 and data.events["item_id"].nunique() == 1682
    assert len(data.items) == 1682 and len(data.users) == 943
    assert set(data.events["value"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.events["timestamp"].min() >= pd.Timestamp("1997-09-01", tz="UTC")


def test_real_groceries(groceries_path):
    data = load_dataset(groceries_path)
    assert len(data.events) == 38_765
    assert data.events["user_id"].nunique() == 3_898
    assert len(data.items) == 167
    assert data.events["session_id"].nunique() == 14_963  # baskets = (member, date)
