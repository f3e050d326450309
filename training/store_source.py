"""Training data read from the service's store: events, items and customers, in bounded chunks.

Events ingested over the API, the RabbitMQ consumer or ``recsys import`` are all in the store, so
a training run with ``data.source: store`` (or ``recsys train --from-store``) trains on what the
service has collected. Rows are streamed from the database ``chunk_rows`` at a time (a
server-side cursor on PostgreSQL) and each chunk is turned into compact columns at once, so the
peak memory is the final frame plus one chunk — never the whole table as Python tuples.
Erased customers are dropped (their events cannot be in the store, but an event re-delivered
after an erasure could be).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Table, Text, cast, select
from tqdm import tqdm

from recsys.data.adapters import Dataset
from recsys.data.frame import pd
from recsys.data.schemas import EVENTS
from recsys.errors import InvalidInputError
from recsys.store import Store
from recsys.store.erasure import drop_erased
from recsys.store.tables import Base

logger = logging.getLogger(__name__)

CHUNK_ROWS = 200_000


def _chunks(store: Store, table: Table, columns: list[str], order: list[str], chunk_rows: int):
    # JSON (and, on SQLite, time) columns come as the stored text: decoding each row's JSON
    # only to encode it again cost most of the read; the text is converted per distinct value
    # (properties) or in one vectorised parse (times) instead.
    raw = {"properties"} | ({"timestamp"} if store.engine.dialect.name == "sqlite" else set())
    stmt = select(
        *(cast(table.c[n], Text).label(n) if n in raw else table.c[n] for n in columns)
    ).order_by(*(table.c[n] for n in order))
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
        yield from result.partitions(chunk_rows)


def _ids(values) -> pa.Array:
    """Text ids (None as "") dictionary-encoded: ids repeat a lot, and the codes live in Arrow
    buffers, not as Python strings that would pin the allocator's arenas chunk after chunk."""
    return pc.dictionary_encode(pc.fill_null(pa.array(values, type=pa.string()), ""))


def _events_chunk(rows) -> pa.Table:
    cols = dict(zip(EVENTS.names, zip(*rows, strict=True), strict=True))
    stamps = pd.to_datetime(list(cols["timestamp"]), utc=True, format="ISO8601")
    return pa.table(
        {
            "user_id": _ids(cols["user_id"]),
            "item_id": _ids(cols["item_id"]),
            "timestamp": pa.Array.from_pandas(stamps).cast(pa.timestamp("ns", "UTC")),
            "event_type": _ids(cols["event_type"]),
            "quantity": pa.array(cols["quantity"], type=pa.int64()),
            "value": pa.array(cols["value"], type=pa.float64()),
            "session_id": _ids(cols["session_id"]),
            "properties": _properties(cols["properties"]),
        }
    )


def _properties(stored) -> pa.Array:
    """Stored JSON texts as canonical JSON (sorted keys, compact), converted once per distinct
    text (training never reads them; one code per row)."""
    encoded = pc.dictionary_encode(pc.fill_null(pa.array(stored, type=pa.string()), ""))
    canonical = [
        _json(json.loads(text) if text else None) for text in encoded.dictionary.to_pylist()
    ]
    code: dict[str, int] = {}  # texts that differ only in spacing or key order share one code
    recode = pa.array([code.setdefault(text, len(code)) for text in canonical],
                      type=encoded.indices.type)  # fmt: skip
    return pa.DictionaryArray.from_arrays(pc.take(recode, encoded.indices), pa.array(list(code)))


def _json(value) -> str:
    return "{}" if not value else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _concat(chunks: Iterator[pa.Table]) -> pd.DataFrame:
    """One frame of the chunks: categorical ids and properties (categories made once here),
    NaN for a missing value."""
    tables = list(chunks)
    if not tables:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in EVENTS.names})
    table = pa.concat_tables(tables).unify_dictionaries().combine_chunks()
    del tables
    return table.to_pandas(self_destruct=True)


def read_store_events(
    store: Store, *, chunk_rows: int = CHUNK_ROWS, progress: bool = False
) -> pd.DataFrame:
    """Every stored event, oldest first, as an events frame with categorical id columns.

    Parameters
    ----------
    store : Store
    chunk_rows : int
        Rows fetched and converted at a time (bounds the memory above the result).
    progress : bool
        A tqdm bar on stderr.
    """
    if chunk_rows <= 0:
        raise InvalidInputError(f"chunk_rows must be positive, got {chunk_rows}")
    table = Base.metadata.tables["events"]
    total = store.events.count()
    bar = tqdm(total=total, unit="ev", desc="reading events", disable=not progress)

    def converted():
        for rows in _chunks(store, table, list(EVENTS.names), ["timestamp", "id"], chunk_rows):
            bar.update(len(rows))
            yield _events_chunk(rows)

    try:
        frame = _concat(converted())
    finally:
        bar.close()
    return drop_erased(frame, store.erased_hashes())


def _table_frame(store: Store, name: str, columns: list[str]) -> pd.DataFrame | None:
    table = Base.metadata.tables.get(name)
    if table is None or not all(c in table.c for c in columns):
        return None
    with store.engine.connect() as conn:
        rows = conn.execute(select(*(table.c[c] for c in columns))).all()
    if not rows:
        return None
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def load_store_dataset(store: Store, *, progress: bool = False) -> Dataset:
    """Events, the catalogue and the customers of ``store`` as a training :class:`Dataset`."""
    events = read_store_events(store, progress=progress)
    if events.empty:
        raise InvalidInputError(
            f"the store {store.url} holds no events to train on; send events to "
            "POST /v1/events, `recsys import events FILE` or `recsys consume` first"
        )
    items = _table_frame(store, "items", ["item_id", "title", "category", "price", "in_stock"])
    if items is not None:
        items["in_stock"] = items["in_stock"].astype(bool)
    users = _table_frame(store, "user_profiles", ["user_id", "country"])
    if users is not None:
        users = drop_erased(users, store.erased_hashes())
    logger.info(
        "store %s: %d events, %s items, %s customers",
        store.url, len(events), "no" if items is None else len(items),
        "no" if users is None else len(users),
    )  # fmt: skip
    return Dataset(events=events, items=items, users=users, name="store")
