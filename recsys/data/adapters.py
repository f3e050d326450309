"""Adapters for public data sets, each returning canonical (validated) frames.

- MovieLens 100K ``u.data`` (tab-separated ``user item rating unix_ts``, no header), with ``u.item``
  and ``u.user`` beside it when present; MovieLens ``ratings.csv`` (``userId,movieId,rating,
  timestamp``) with ``movies.csv`` beside it.
- Groceries (``Member_number,Date,itemDescription``): one basket per (member, date).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.loaders import apply_column_map, read_raw
from recsys.data.schemas import EVENTS, ITEMS, USERS
from recsys.data.validate import validate_frame

logger = logging.getLogger(__name__)

ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


@dataclass
class Dataset:
    """Events plus whatever item and user tables the source provides."""

    events: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "interactions"


def _movielens_udata(path: Path) -> Dataset:
    try:
        raw = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=["user_id", "item_id", "value", "timestamp"],
            dtype=str,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(str(path), f"not a MovieLens u.data file: {exc}") from None
    raw["event_type"] = "rate"
    events = validate_frame(raw, EVENTS, str(path))
    items = users = None
    item_file, user_file = path.with_name("u.item"), path.with_name("u.user")
    if item_file.exists():
        meta = pd.read_csv(
            item_file, sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False
        )
        flags = meta.iloc[:, 5 : 5 + len(ML_GENRES)].astype(int).to_numpy()
        genres = [[g for g, f in zip(ML_GENRES, row, strict=True) if f] for row in flags]
        items = validate_frame(
            pd.DataFrame(
                {
                    "item_id": meta[0],
                    "title": meta[1],
                    "category": [g[0] if g else "unknown" for g in genres],
                    "attributes": [
                        {"genres": g, "release_date": date}
                        for g, date in zip(genres, meta[2], strict=True)
                    ],
                }
            ),
            ITEMS,
            str(item_file),
        )
    if user_file.exists():
        meta = pd.read_csv(user_file, sep="|", header=None, dtype=str, keep_default_na=False)
        users = validate_frame(
            pd.DataFrame(
                {
                    "user_id": meta[0],
                    "attributes": [
                        {"age": int(a), "gender": g, "occupation": o, "zip": z}
                        for a, g, o, z in zip(meta[1], meta[2], meta[3], meta[4], strict=True)
                    ],
                }
            ),
            USERS,
            str(user_file),
        )
    return Dataset(events, items, users, name="ml-100k")


def _movielens_ratings_csv(path: Path, raw: pd.DataFrame) -> Dataset:
    raw = raw.rename(columns={"userId": "user_id", "movieId": "item_id", "rating": "value"})
    raw["event_type"] = "rate"
    events = validate_frame(raw, EVENTS, str(path))
    items = None
    movies = path.with_name("movies.csv")
    if movies.exists():
        meta = read_raw(movies)
        items = validate_frame(
            pd.DataFrame(
                {
                    "item_id": meta["movieId"],
                    "title": meta["title"],
                    "category": meta["genres"].str.split("|").str[0],
                    "attributes": [{"genres": g.split("|")} for g in meta["genres"]],
                }
            ),
            ITEMS,
            str(movies),
        )
    return Dataset(events, items, None, name="movielens")


def _groceries(path: Path, raw: pd.DataFrame) -> Dataset:
    dates = pd.to_datetime(raw["Date"], format="mixed", dayfirst=False, errors="coerce", utc=True)
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            str(path), f"cannot parse date {raw['Date'].iloc[row]!r}", row=row + 1, column="Date"
        )
    frame = pd.DataFrame(
        {
            "user_id": raw["Member_number"],
            "item_id": raw["itemDescription"].str.strip(),
            "timestamp": dates,
            "event_type": "purchase",
            "session_id": raw["Member_number"].astype(str) + "@" + dates.dt.strftime("%Y-%m-%d"),
        }
    )
    events = validate_frame(frame, EVENTS, str(path))
    names = np.sort(events["item_id"].unique())
    items = validate_frame(pd.DataFrame({"item_id": names, "title": names}), ITEMS, str(path))
    return Dataset(events, items, None, name="groceries")


def load_dataset(path: str | Path, columns=None, delimiter: str | None = None) -> Dataset:
    """Load any supported interactions file, recognising public data-set layouts by their shape.

    Parameters
    ----------
    path : path to ``u.data``, a MovieLens ``ratings.csv``, the Groceries CSV, or a canonical
        events file (CSV/Parquet with ``user_id,item_id,timestamp`` and optional columns).
    columns : optional column map for canonical files, ``{"source_name": "canonical_name"}``.
    """
    path = Path(path)
    if path.name == "u.data":
        return _movielens_udata(path)
    raw = read_raw(path, delimiter)
    cols = set(raw.columns)
    if {"userId", "movieId", "rating", "timestamp"} <= cols and not columns:
        return _movielens_ratings_csv(path, raw)
    if {"Member_number", "Date", "itemDescription"} <= cols and not columns:
        return _groceries(path, raw)
    raw = apply_column_map(raw, columns, str(path))
    if raw.empty:
        raise DataValidationError(str(path), "file has a header but no rows")
    return Dataset(validate_frame(raw, EVENTS, str(path)), name=path.stem)
