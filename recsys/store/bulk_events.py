"""The write half of ``recsys import events``: validated events into the ``events`` table, fast.

The loaders have already validated the file; this module turns its columns into what each
backend takes with vectorised Arrow/numpy conversions (no per-row Python objects are built
except the ones the SQLite driver binds) and writes them in the caller's transaction:

* PostgreSQL: ``COPY events (...) FROM STDIN (FORMAT csv)`` fed with CSV blocks that
  ``pyarrow.csv.write_csv`` formats in C.
* SQLite: ``executemany`` on the raw ``sqlite3`` cursor (one prepared statement) over plain
  tuples; timestamps are formatted to the stored text in one Arrow pass, repeated strings
  (user, item, session ids) are shared Python objects made once per distinct value.

An optional ``event_id`` column makes a re-import idempotent: rows whose id is stored already
(or repeated earlier in the file) are skipped, like the event path skips them.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from recsys.data.errors import DataValidationError
from recsys.data.event_check import EVENT_ID_LENGTH
from recsys.data.frame import pd
from recsys.data.readers import column_names, line_of_row, read_raw

CHUNK = 100_000
COLUMNS = ("user_id", "item_id", "event_type", "timestamp", "quantity", "value", "session_id",
           "properties")  # fmt: skip


def time_text(stamps: pa.Array | pa.ChunkedArray, iso: bool = False) -> pa.Array:
    """Microsecond times as ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC: the text SQLAlchemy's
    SQLite DateTime writes and reads) or, with ``iso``, ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``
    (``datetime.isoformat``). Arrow's cast to string, far cheaper than ``strftime``."""
    text = pc.cast(pc.cast(stamps, pa.timestamp("us")), pa.string())
    if not iso:
        return text
    text = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, "+00:00", "")


def _null_blank(values: pa.Array, blank: str = "") -> pa.Array:
    return pc.if_else(pc.equal(values, blank), pa.scalar(None, pa.string()), values)


def event_table(frame: pd.DataFrame, event_ids: pa.Array | None) -> pa.Table:
    """The loader's events frame as an Arrow table (``COLUMNS`` [+ ``event_id``]); blanks null."""
    stamps = frame["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = pa.array(stamps.to_numpy().astype("datetime64[us]")).cast(pa.timestamp("us", "UTC"))
    columns = {
        "user_id": pa.array(frame["user_id"], type=pa.string()),
        "item_id": _null_blank(pa.array(frame["item_id"], type=pa.string())),
        "event_type": pa.array(frame["event_type"].astype(str), type=pa.string()),
        "timestamp": stamps,
        "quantity": pa.array(frame["quantity"], type=pa.int64()),
        "value": pa.array(frame["value"], type=pa.float64(), from_pandas=True),
        "session_id": _null_blank(pa.array(frame["session_id"], type=pa.string())),
        "properties": _null_blank(pa.array(frame["properties"], type=pa.string()), "{}"),
    }
    if event_ids is not None:
        columns["event_id"] = event_ids
    return pa.table(columns)


def read_event_ids(path: Path, rows: int) -> pa.Array | None:
    """The file's ``event_id`` column (blank = none), checked like the event path checks it;
    ``None`` when the file has no such column."""
    if "event_id" not in column_names(path):
        return None
    raw = read_raw(path, usecols=["event_id"])["event_id"]
    ids = pa.array(raw.astype("str").where(raw.notna(), None), type=pa.string())
    if len(ids) != rows:  # the loaders keep every row; anything else is a bug upstream
        raise DataValidationError(str(path), f"event_id has {len(ids)} rows, the file {rows}")
    ids = _null_blank(pc.utf8_trim_whitespace(ids))
    for bad, problem in (
        (pc.greater(pc.utf8_length(ids), EVENT_ID_LENGTH), f"longer than {EVENT_ID_LENGTH}"
         " characters"),
        (pc.match_substring(ids, "\x00"), "must not contain NUL characters"),
    ):  # fmt: skip
        mask = bad.fill_null(False).to_numpy(zero_copy_only=False)
        if mask.any():
            row = int(np.flatnonzero(mask)[0]) + 1
            error = DataValidationError(str(path), problem, row=row, column="event_id",
                                        more=int(mask.sum()) - 1)  # fmt: skip
            raise error.at_line(line_of_row(path, row))
    return ids


def new_rows(table: pa.Table, stored: set[str]) -> np.ndarray:
    """Mask of the rows to insert: no ``event_id``, or one neither ``stored`` nor seen above."""
    ids = pd.Series(table["event_id"].to_pandas())
    fresh = ids.isna() | ~(ids.duplicated() | ids.isin(stored))
    return fresh.to_numpy(dtype=bool)


def _objects(column: pa.ChunkedArray) -> list:
    """Python values of an Arrow column; each distinct string becomes one shared object."""
    column = column.combine_chunks()
    if pa.types.is_string(column.type):
        encoded = pc.dictionary_encode(column)
        values = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
        codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()
        return values[codes].tolist()
    if pa.types.is_floating(column.type):
        numbers = column.to_numpy(zero_copy_only=False)  # nulls become NaN
        out = numbers.astype(object)
        out[np.isnan(numbers)] = None
        return out.tolist()
    return column.to_numpy(zero_copy_only=False).tolist()


def write_sqlite(cursor, table: pa.Table, ingested_at: datetime, bar: tqdm) -> None:
    """Insert ``table`` with the raw ``sqlite3`` cursor in the caller's transaction."""
    names = list(table.column_names)
    stamp = ingested_at.strftime("%Y-%m-%d %H:%M:%S.%f")  # one literal for every row
    sql = (f"INSERT INTO events ({', '.join(names)}, ingested_at) "
           f"VALUES ({', '.join('?' * len(names))}, '{stamp}')")  # fmt: skip
    for start in range(0, table.num_rows, CHUNK):
        chunk = table.slice(start, CHUNK)
        text = time_text(chunk["timestamp"])
        chunk = chunk.set_column(names.index("timestamp"), "timestamp", text)
        cursor.executemany(sql, zip(*(_objects(chunk[name]) for name in names), strict=True))
        bar.update(chunk.num_rows)


def write_postgres(cursor, table: pa.Table, ingested_at: datetime, bar: tqdm) -> None:
    """``COPY`` ``table`` into ``events`` (psycopg 3 cursor, caller's transaction)."""
    names = list(table.column_names)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    # Times go as ISO text: Arrow's CSV writer formats zoned timestamps ~20x slower than a cast.
    stamp = pa.scalar(ingested_at.astimezone(UTC).isoformat(timespec="microseconds"))
    sql = f"COPY events ({', '.join(names)}, ingested_at) FROM STDIN (FORMAT csv)"
    with cursor.copy(sql) as copy:
        for start in range(0, table.num_rows, CHUNK):
            chunk = table.slice(start, CHUNK)
            text = time_text(chunk["timestamp"], iso=True)
            chunk = chunk.set_column(names.index("timestamp"), "timestamp", text)
            chunk = chunk.append_column("ingested_at", pa.repeat(stamp, chunk.num_rows))
            buffer = io.BytesIO()
            pacsv.write_csv(chunk, buffer, options)
            copy.write(buffer.getbuffer())
            bar.update(chunk.num_rows)
