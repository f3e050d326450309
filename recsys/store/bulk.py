"""Bulk import of events, items and customers from CSV or Parquet into the store.

A file is read and validated completely by the loaders of :mod:`recsys.data` (the same
columns, rules and one-line errors), then written in ONE transaction: a file with a bad row
imports nothing. Events take a fast path per backend (:mod:`recsys.store.bulk_events`:
PostgreSQL ``COPY`` of CSV blocks, SQLite ``executemany`` on the raw cursor), and in the same
transaction they are folded into their users' profiles and segment aggregates with one upsert
per table (:mod:`recsys.store.bulk_aggregates`); the imported customers are left ``pending``
for the segment engine's recovery, since import does not call the event path's subscribers.
On PostgreSQL the import locks ``user_profiles`` and ``customer_aggregates`` first, so event
appends that run meanwhile fold after it, in commit order.

An ``event_id`` column makes a re-import skip the events stored already.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select, text
from tqdm import tqdm

from recsys.data.errors import DataValidationError
from recsys.data.frame import pd
from recsys.data.loaders import load_events, load_table
from recsys.data.readers import column_names, line_of_row
from recsys.store import bulk_events, forked
from recsys.store.bulk_aggregates import (
    aggregate_inputs,
    aggregate_rows,
    profile_rows,
    write_aggregates,
    write_profiles,
)
from recsys.store.catalogue import ITEM_FIELDS, ITEM_RECORDS, write_items
from recsys.store.catalogue import table_row as item_row
from recsys.store.customers import USER_RECORDS, customer_problem, write_customers
from recsys.store.customers import table_row as customer_row
from recsys.store.db import analyze, is_postgres, mask_url, write_session
from recsys.store.store import Store
from recsys.store.tables import ID_LENGTH, Event, utcnow

logger = logging.getLogger(__name__)

Kind = Literal["events", "items", "users"]
KINDS: tuple[str, ...] = ("events", "items", "users")
CHUNK = 100_000


@dataclass(frozen=True)
class ImportResult:
    """What one import wrote (committed when returned)."""

    kind: str
    path: str
    rows: int
    profiles: int
    seconds: float
    database: str
    skipped: int = 0  # events whose event_id was stored already (or repeated in the file)

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
        array = pa.array(values, type=pa.string())  # Arrow kernels: no per-row Python
        nul = pc.or_(pc.match_substring(array, "\x00"), pc.match_substring(array, "\\u0000"))
        if pc.any(nul).as_py():
            raise _bad_row(path, nul.fill_null(False).to_numpy(zero_copy_only=False), column,
                           "must not contain NUL characters")  # fmt: skip
        if column in ids and (pc.max(pc.utf8_length(array)).as_py() or 0) > ID_LENGTH:
            long = pc.greater(pc.utf8_length(array), ID_LENGTH).fill_null(False)
            raise _bad_row(path, long.to_numpy(zero_copy_only=False), column,
                           f"longer than {ID_LENGTH} characters")  # fmt: skip


def _progress(total: int, kind: str, enabled: bool) -> tqdm:
    return tqdm(total=total, unit=f" {kind}", unit_scale=True, desc=f"importing {kind}",
                file=sys.stderr, disable=not enabled, leave=False)  # fmt: skip


def _stored_event_ids(session, ids: pa.Array) -> set[str]:
    """Which of ``ids`` the store has already (nothing to look up when it holds none)."""
    table = Event.__table__
    has_ids = select(table.c.event_id).where(table.c.event_id.is_not(None)).limit(1)
    if session.execute(has_ids).first() is None:
        return set()
    wanted, found = pc.unique(ids.drop_null()).to_pylist(), set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        found.update(session.scalars(select(table.c.event_id).where(table.c.event_id.in_(chunk))))
    return found


IMPORT_CACHE_KIB = 256 * 1024  # SQLite page cache while an import runs


@contextmanager
def _large_cache(cursor, pg: bool):
    """On SQLite, a page cache of ``IMPORT_CACHE_KIB`` for the import (index builds and upserts
    re-read pages the default 2 MB would evict); the pooled connection gets its own back."""
    if pg:
        yield
        return
    default = cursor.execute("PRAGMA cache_size").fetchone()[0]
    cursor.execute(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        cursor.execute(f"PRAGMA cache_size={default}")


def import_events(
    store: Store, path: str | Path, *, progress: bool = True, rebuild_indexes: bool | None = None
) -> ImportResult:
    """Append every event of a canonical events file and fold them into their users' profiles
    and segment aggregates, in one transaction.

    An ``event_id`` column (optional) makes the import idempotent: rows whose id is stored
    already, or repeated earlier in the file, are skipped (``ImportResult.skipped``).
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
    table = bulk_events.event_table(frame, bulk_events.read_event_ids(path, len(frame)))
    with write_session(store.engine) as s:
        pg = is_postgres(s)
        cursor = s.connection().connection.dbapi_connection.cursor()
        if pg:  # appends fold after this import commits, in commit order
            cursor.execute("LOCK TABLE user_profiles, customer_aggregates "
                           "IN SHARE ROW EXCLUSIVE MODE")  # fmt: skip
        skipped = 0
        if "event_id" in table.column_names:
            fresh = bulk_events.new_rows(table, _stored_event_ids(s, table["event_id"]))
            skipped = int((~fresh).sum())
            if skipped:
                table, frame = table.filter(fresh), frame[fresh]
        stored = s.scalar(select(func.max(Event.id))) or 0
        rebuild = table.num_rows >= stored if rebuild_indexes is None else rebuild_indexes
        indexes = sorted(Event.__table__.indexes, key=lambda i: i.name) if rebuild else []
        for index in indexes:  # building an index by one sort beats millions of random inserts
            s.execute(text(f"DROP INDEX {index.name}"))
        inputs = aggregate_inputs(s, frame) if len(frame) else None  # read before writing
        with _progress(table.num_rows, "events", progress) as bar, _large_cache(cursor, pg):
            folded = _write_and_fold(s, cursor, table, (frame, inputs), indexes, bar)
            profiles = write_profiles(s, folded[0]) if folded[0] else 0
            if folded[1]:
                write_aggregates(s, folded[1])
    # fresh statistics: a segment refresh right after a 6M-event import scanned ``events`` once
    # per 1,000-customer chunk until autovacuum got to it
    analyze(store.engine, "events", "user_profiles", "customer_aggregates")
    return _done("events", path, table.num_rows, profiles, start, store, skipped)


def _write_and_fold(session, cursor, table, fold_of, indexes, bar) -> tuple[list, list]:
    """Write the events, build ``indexes`` and compute the profile and aggregate rows of
    ``fold_of`` (frame, inputs) meanwhile: on PostgreSQL in a thread (the server parses the
    COPY without our GIL), on SQLite in a forked process (its driver binds each inserted row
    under the GIL, see :mod:`recsys.store.forked`)."""
    frame, inputs = fold_of
    pg = is_postgres(session)

    def fold() -> tuple[list, list]:
        if inputs is None:
            return [], []
        return profile_rows(frame, pg), aggregate_rows(frame, inputs, pg)

    with ThreadPoolExecutor(max_workers=1) as pool:
        folding = pool.submit(fold) if pg or inputs is None else forked.start(fold, pool)
        write = bulk_events.write_postgres if pg else bulk_events.write_sqlite
        write(cursor, table, utcnow(), bar)
        for index in indexes:
            index.create(session.connection())
        return folding.result()


def _done(kind: str, path: Path, rows: int, profiles: int, start: float, store: Store,
          skipped: int = 0):  # fmt: skip
    result = ImportResult(kind, str(path), rows, profiles, time.perf_counter() - start,
                          mask_url(store.engine.url), skipped)  # fmt: skip
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
