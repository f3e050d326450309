"""Bulk import of events, items and customers from CSV or Parquet into the store.

A file is read and validated completely by the loaders of :mod:`recsys.data` (the same
columns, rules and one-line errors), then written in ONE transaction: a file with a bad row
imports nothing. Events take a fast path per backend: PostgreSQL ``COPY ... FROM STDIN``
(psycopg 3), SQLite batched ``executemany`` of pre-formatted rows. In the same transaction the
profile aggregates of every user in the file are recomputed from all their stored events with
one set-based ``INSERT ... SELECT ... GROUP BY`` (PostgreSQL first locks ``user_profiles``
against concurrent event appends, so none of their increments is lost).

Imported events carry no ``event_id``: importing the same file twice stores its events twice.
Import does not notify the event path's subscribers (segments refresh in batch).
"""

from __future__ import annotations

import io
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import func, select, text
from tqdm import tqdm

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.loaders import load_events, load_table
from recsys.data.readers import column_names, line_of_row
from recsys.store.catalogue import ITEM_FIELDS, ITEM_RECORDS, write_items
from recsys.store.catalogue import table_row as item_row
from recsys.store.customers import USER_RECORDS, customer_problem, write_customers
from recsys.store.customers import table_row as customer_row
from recsys.store.db import is_postgres, mask_url, write_session
from recsys.store.store import Store
from recsys.store.tables import ID_LENGTH, Event, utcnow

logger = logging.getLogger(__name__)

Kind = Literal["events", "items", "users"]
KINDS: tuple[str, ...] = ("events", "items", "users")
CHUNK = 100_000
_EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp", "quantity", "value",
                  "session_id", "properties", "ingested_at")  # fmt: skip


@dataclass(frozen=True)
class ImportResult:
    """What one import wrote (committed when returned)."""

    kind: str
    path: str
    rows: int
    profiles: int
    seconds: float
    database: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second)}


def _bad_row(path: Path, mask: np.ndarray, column: str, problem: str) -> DataValidationError:
    row = int(np.flatnonzero(mask)[0]) + 1
    error = DataValidationError(
        str(path), problem, row=row, column=column, more=int(mask.sum()) - 1
    )
    return error.at_line(line_of_row(path, row))


def _check_storable(frame: pd.DataFrame, path: Path, ids: tuple[str, ...]) -> None:
    """What the loaders accept but a backend cannot hold: NUL characters (also as the JSON
    escape ``\\u0000``, which PostgreSQL's JSONB refuses) and over-long ids."""
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_string_dtype(values):
            continue
        nul = values.str.contains("\x00", regex=False) | values.str.contains("\\u0000", regex=False)
        if nul.any():
            raise _bad_row(path, nul.to_numpy(), column, "must not contain NUL characters")
        if column in ids:
            long = (values.str.len() > ID_LENGTH).to_numpy()
            if long.any():
                raise _bad_row(path, long, column, f"longer than {ID_LENGTH} characters")


def _progress(total: int, kind: str, enabled: bool) -> tqdm:
    return tqdm(total=total, unit=f" {kind}", unit_scale=True, desc=f"importing {kind}",
                file=sys.stderr, disable=not enabled, leave=False)  # fmt: skip


def _event_table(frame: pd.DataFrame, now) -> pa.Table:
    """The events as an Arrow table in ``_EVENT_COLUMNS`` order; blanks become nulls."""

    def text_or_null(name: str, blank: str = "") -> pa.Array:
        values = pa.array(frame[name], type=pa.string())
        return pc.if_else(pc.equal(values, blank), pa.scalar(None, pa.string()), values)

    stamps = frame["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = pa.array(stamps.to_numpy().astype("datetime64[us]")).cast(pa.timestamp("us", "UTC"))
    return pa.table({
        "user_id": pa.array(frame["user_id"], type=pa.string()),
        "item_id": text_or_null("item_id"),
        "event_type": pa.array(frame["event_type"].astype(str), type=pa.string()),
        "timestamp": stamps,
        "quantity": pa.array(frame["quantity"], type=pa.int64()),
        "value": pa.array(frame["value"], type=pa.float64(), from_pandas=True),
        "session_id": text_or_null("session_id"),
        "properties": text_or_null("properties", "{}"),
        "ingested_at": pa.array(np.full(len(frame), now.replace(tzinfo=None), "datetime64[us]"))
        .cast(pa.timestamp("us", "UTC")),
    })  # fmt: skip


def _copy_events(session, table: pa.Table, bar: tqdm) -> None:
    cursor = session.connection().connection.dbapi_connection.cursor()
    columns = ", ".join(_EVENT_COLUMNS)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with cursor.copy(f"COPY events ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for start in range(0, table.num_rows, CHUNK):
            chunk = table.slice(start, CHUNK)
            buffer = io.BytesIO()
            pacsv.write_csv(chunk, buffer, options)
            copy.write(buffer.getbuffer())
            bar.update(chunk.num_rows)


def _sqlite_events(session, table: pa.Table, bar: tqdm) -> None:
    # The text format SQLAlchemy's SQLite DateTime writes and reads (UTC, naive, microseconds).
    fmt = "%Y-%m-%d %H:%M:%S"
    columns = {name: table[name] for name in _EVENT_COLUMNS}
    for name in ("timestamp", "ingested_at"):
        columns[name] = pc.strftime(columns[name].cast(pa.timestamp("us")), format=fmt)
    cursor = session.connection().connection.dbapi_connection.cursor()
    sql = (f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})")  # fmt: skip
    for start in range(0, table.num_rows, CHUNK):
        lists = [columns[name].slice(start, CHUNK).to_pylist() for name in _EVENT_COLUMNS]
        cursor.executemany(sql, zip(*lists, strict=True))
        bar.update(len(lists[0]))


_RECOMPUTE = """
INSERT INTO user_profiles (user_id, first_seen, last_seen, event_count, purchase_count, revenue)
SELECT e.user_id, MIN(e.timestamp), MAX(e.timestamp), COUNT(*),
       SUM(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END),
       COALESCE(SUM(CASE WHEN e.event_type = 'purchase' THEN e.value END), 0)
FROM events e JOIN recsys_import_users u ON u.user_id = e.user_id
WHERE 1 = 1
GROUP BY e.user_id
ON CONFLICT (user_id) DO UPDATE SET
    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
    event_count = excluded.event_count, purchase_count = excluded.purchase_count,
    revenue = excluded.revenue
"""


def recompute_profiles(session, user_ids: np.ndarray) -> int:
    """Set the aggregates of ``user_ids`` from all their stored events (caller's transaction)."""
    cursor = session.connection().connection.dbapi_connection.cursor()
    if is_postgres(session):
        cursor.execute(
            "CREATE TEMP TABLE recsys_import_users (user_id varchar(255) PRIMARY KEY) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY recsys_import_users (user_id) FROM STDIN") as copy:
            for user_id in user_ids:
                copy.write_row((user_id,))
        cursor.execute("LOCK TABLE user_profiles IN SHARE ROW EXCLUSIVE MODE")
    else:
        cursor.execute("CREATE TEMP TABLE recsys_import_users (user_id TEXT PRIMARY KEY)")
        cursor.executemany("INSERT INTO recsys_import_users VALUES (?)", ((u,) for u in user_ids))
    session.execute(text(_RECOMPUTE))
    if not is_postgres(session):
        cursor.execute("DROP TABLE temp.recsys_import_users")
    return len(user_ids)


def import_events(
    store: Store, path: str | Path, *, progress: bool = True, rebuild_indexes: bool | None = None
) -> ImportResult:
    """Append every event of a canonical events file and recompute its users' profiles.

    ``rebuild_indexes`` drops the events table's secondary indexes before writing and builds
    them again after, in the same transaction (default: when the file holds at least as many
    events as the table). On PostgreSQL that locks ``events`` against readers until the
    commit; meant for initial loads.

    Raises
    ------
    DataValidationError
        The first bad row (file, row, line, column, problem); nothing is written.
    """
    path, start = Path(path), time.perf_counter()
    frame = load_events(path)
    _check_storable(frame, path, ids=("user_id", "item_id", "session_id"))
    table = _event_table(frame, utcnow())
    users = frame["user_id"].unique()
    del frame
    with _progress(table.num_rows, "events", progress) as bar, write_session(store.engine) as s:
        stored = s.scalar(select(func.max(Event.id))) or 0
        rebuild = table.num_rows >= stored if rebuild_indexes is None else rebuild_indexes
        indexes = sorted(Event.__table__.indexes, key=lambda i: i.name) if rebuild else []
        for index in indexes:  # building an index by one sort beats millions of random inserts
            s.execute(text(f"DROP INDEX {index.name}"))
        (_copy_events if is_postgres(s) else _sqlite_events)(s, table, bar)
        for index in indexes:
            index.create(s.connection())
        profiles = recompute_profiles(s, np.asarray(users, dtype=object))
    return _done("events", path, table.num_rows, profiles, start, store)


def _done(kind: str, path: Path, rows: int, profiles: int, start: float, store: Store):
    result = ImportResult(kind, str(path), rows, profiles, time.perf_counter() - start,
                          mask_url(store.engine.url))  # fmt: skip
    logger.info("imported %d %s from %s in %.1f s", rows, kind, path, result.seconds)
    return result


def _present(path: Path, schema_names) -> set[str]:
    return set(column_names(path)) & set(schema_names)


def import_items(store: Store, path: str | Path, *, progress: bool = True) -> ImportResult:
    """Upsert every item of a catalogue file (the ``ITEMS`` columns plus ``stock``, ``active``).

    Columns the file does not have keep their stored value (see :mod:`recsys.store.catalogue`).
    """
    path, start = Path(path), time.perf_counter()
    frame = load_table(path, ITEM_RECORDS)
    _check_storable(frame, path, ids=("item_id",))
    present, now = _present(path, ITEM_FIELDS), utcnow()
    rows = [item_row(record, present, now) for record in frame.to_dict("records")]
    with _progress(len(rows), "items", progress) as bar, write_session(store.engine) as s:
        for first in range(0, len(rows), CHUNK // 10):
            bar.update(write_items(s, rows[first : first + CHUNK // 10]))
    return _done("items", path, len(rows), 0, start, store)


def import_users(store: Store, path: str | Path, *, progress: bool = True) -> ImportResult:
    """Upsert every customer of a users file (the ``USERS`` columns plus ``time_zone``)."""
    path, start = Path(path), time.perf_counter()
    frame = load_table(path, USER_RECORDS)
    _check_storable(frame, path, ids=("user_id",))
    rows = []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        row = customer_row(record)
        found = customer_problem(row)
        if found is not None:
            error = DataValidationError(str(path), found[1], row=number, column=found[0])
            raise error.at_line(line_of_row(path, number))
        rows.append(row)
    present = _present(path, USER_RECORDS.names)
    with _progress(len(rows), "users", progress) as bar, write_session(store.engine) as s:
        for first in range(0, len(rows), CHUNK // 10):
            bar.update(write_customers(s, rows[first : first + CHUNK // 10], present))
    return _done("users", path, len(rows), len(rows), start, store)


IMPORTERS = {"events": import_events, "items": import_items, "users": import_users}


def import_file(store: Store, kind: Kind, path: str | Path, *, progress: bool = True):
    """Import ``path`` as ``kind`` (``events``, ``items`` or ``users``); see the importers."""
    if kind not in IMPORTERS:
        raise DataValidationError(str(path), f"unknown kind {kind!r}; expected {', '.join(KINDS)}")
    return IMPORTERS[kind](store, path, progress=progress)
