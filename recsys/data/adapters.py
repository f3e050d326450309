"""Adapters for public data sets, each returning canonical (validated) frames.

- MovieLens 100K ``u.data`` (tab-separated ``user item rating unix_ts``, no header), with ``u.item``
  and ``u.user`` beside it when present; MovieLens ``ratings.csv`` (``userId,movieId,rating,
  timestamp``) with ``movies.csv`` beside it.
- Groceries (``Member_number,Date,itemDescription``): one basket per (member, date).
- Anything else: a canonical events file (see :func:`recsys.data.loaders.load_events`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.loaders import load_table, validate_file_frame
from recsys.data.readers import column_names, read_headerless, read_raw
from recsys.data.schemas import EVENTS, ITEMS, USERS
from recsys.data.validate import validate_frame

logger = logging.getLogger(__name__)

ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
ML_ITEM_COLUMNS = ["item_id", "title", "release_date", "video_release_date", "url", *ML_GENRES]
ML_USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip"]
GROCERIES_COLUMNS = {"Member_number", "Date", "itemDescription"}
RATINGS_COLUMNS = {"userId", "movieId", "rating", "timestamp"}


@dataclass
class Dataset:
    """Events plus whatever item and user tables the source provides."""

    events: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "interactions"


def _first_bad(source: Path, column: str, bad: np.ndarray, values, problem: str) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        raise DataValidationError(
            str(source), f"{problem}, got {values[row]!r}", row=row + 1, column=column
        )


def _require(names, needed, source: Path) -> None:
    missing = [name for name in needed if name not in names]
    if missing:
        raise DataValidationError(
            str(source),
            f"missing required column(s) {', '.join(map(repr, missing))}",
            row=0,
            column=missing[0],
        )


def _movielens_items(path: Path) -> pd.DataFrame:
    meta = read_headerless(path, ML_ITEM_COLUMNS, "|", encoding="latin-1")
    flags = meta[list(ML_GENRES)]
    for genre in ML_GENRES:
        column = flags[genre].to_numpy()
        _first_bad(path, genre, ~np.isin(column, ["0", "1"]), column, "genre flag must be 0 or 1")
    on = (flags == "1").to_numpy()
    genres = [[g for g, f in zip(ML_GENRES, row, strict=True) if f] for row in on]
    frame = pd.DataFrame(
        {
            "item_id": meta["item_id"],
            "title": meta["title"],
            "category": [g[0] if g else "unknown" for g in genres],
            "attributes": [
                {"genres": g, "release_date": date}
                for g, date in zip(genres, meta["release_date"], strict=True)
            ],
        }
    )
    return validate_frame(frame, ITEMS, str(path))


def _movielens_users(path: Path) -> pd.DataFrame:
    meta = read_headerless(path, ML_USER_COLUMNS, "|", encoding="latin-1")
    ages = pd.to_numeric(meta["age"], errors="coerce").to_numpy(dtype="float64")
    _first_bad(path, "age", np.isnan(ages) | (ages < 0), meta["age"].to_numpy(), "age must be >= 0")
    frame = pd.DataFrame(
        {
            "user_id": meta["user_id"],
            "attributes": [
                {"age": int(a), "gender": g, "occupation": o, "zip": z}
                for a, g, o, z in zip(
                    ages, meta["gender"], meta["occupation"], meta["zip"], strict=True
                )
            ],
        }
    )
    return validate_frame(frame, USERS, str(path))


def _movielens_udata(path: Path) -> Dataset:
    raw = read_headerless(path, ["user_id", "item_id", "value", "timestamp"], "\t")
    raw["event_type"] = "rate"
    events = validate_file_frame(raw, EVENTS, path, "\t", header=False)
    item_file, user_file = path.with_name("u.item"), path.with_name("u.user")
    items = _movielens_items(item_file) if item_file.exists() else None
    users = _movielens_users(user_file) if user_file.exists() else None
    return Dataset(events, items, users, name="ml-100k")


def _movielens_ratings_csv(path: Path, delimiter: str | None) -> Dataset:
    raw = read_raw(path, delimiter)
    raw = raw.rename(columns={"userId": "user_id", "movieId": "item_id", "rating": "value"})
    raw["event_type"] = "rate"
    events = validate_file_frame(raw, EVENTS, path, delimiter)
    items = None
    movies = path.with_name("movies.csv")
    if movies.exists():
        meta = read_raw(movies)
        _require(meta.columns, ["movieId", "title", "genres"], movies)
        genres = meta["genres"].str.split("|")
        items = validate_frame(
            pd.DataFrame(
                {
                    "item_id": meta["movieId"],
                    "title": meta["title"],
                    "category": genres.str[0],
                    "attributes": [{"genres": g} for g in genres],
                }
            ),
            ITEMS,
            str(movies),
        )
    return Dataset(events, items, None, name="movielens")


def _basket_dates(path: Path, text: pd.Series) -> pd.Series:
    """Dates as ISO (``2015-07-21``) or day-first (``21-07-2015``, ``21/07/2015``)."""
    best = None
    for fmt in ("ISO8601", "%d-%m-%Y", "%d/%m/%Y"):
        dates = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        if not dates.isna().any():
            return dates
        if best is None:
            best = dates
    bad = best.isna().to_numpy()
    _first_bad(path, "Date", bad, text.to_numpy(), "cannot parse date (expected YYYY-MM-DD)")
    return best


def _groceries(path: Path, delimiter: str | None) -> Dataset:
    raw = read_raw(path, delimiter, usecols=GROCERIES_COLUMNS)
    dates = _basket_dates(path, raw["Date"].str.strip())
    frame = pd.DataFrame(
        {
            "user_id": raw["Member_number"],
            "item_id": raw["itemDescription"].str.strip(),
            "timestamp": dates,
            "event_type": "purchase",
            "session_id": raw["Member_number"].str.strip() + "@" + dates.dt.strftime("%Y-%m-%d"),
        }
    )
    events = validate_file_frame(frame, EVENTS, path, delimiter)
    names = np.sort(events["item_id"].unique())
    items = validate_frame(pd.DataFrame({"item_id": names, "title": names}), ITEMS, str(path))
    return Dataset(events, items, None, name="groceries")


def load_dataset(path: str | Path, columns=None, delimiter: str | None = None) -> Dataset:
    """Load any supported interactions file, recognising public data-set layouts by their shape.

    Parameters
    ----------
    path : str or Path
        ``u.data``, a MovieLens ``ratings.csv``, the Groceries CSV, or a canonical events file
        (CSV/Parquet with ``user_id,item_id,timestamp`` and optional columns).
    columns : mapping, optional
        Column map for canonical files, ``{"source_name": "canonical_name"}``.
    delimiter : str, optional
        CSV field separator.

    Raises
    ------
    DataValidationError
        Naming the file, the row and the column of the first problem; nothing is returned then.
    """
    path = Path(path)
    if path.name == "u.data":
        return _movielens_udata(path)
    names = set(column_names(path, delimiter))
    if RATINGS_COLUMNS <= names and not columns:
        return _movielens_ratings_csv(path, delimiter)
    if GROCERIES_COLUMNS <= names and not columns:
        return _groceries(path, delimiter)
    return Dataset(load_table(path, EVENTS, columns, delimiter), name=path.stem)
