"""Profiles and segment aggregates of bulk-imported events, set-based.

Imported events are appended after every stored event (higher ids), so folding them onto the
stored state is what :func:`recsys.store.profile_aggregates.recompute` gives. The folding is
vectorised over the import (pandas group-bys; only open carts are folded event by event, and
only their events after the item's last purchase) and each table is written with one upsert:
``user_profiles`` adds counts and widens first/last seen like the event path does;
``customer_aggregates`` gets the folded state, ``seq`` advanced by the user's imported events
and ``pending`` set, so :meth:`recsys.segments.engine.SegmentEngine.recover` re-evaluates the
imported customers' segments (import itself does not call the event path's subscribers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.data.frame import pd
from recsys.store.bulk_events import time_text
from recsys.store.db import dialect_insert, is_postgres
from recsys.store.profile_aggregates import (
    ADD,
    PURCHASE,
    REMOVE,
    CustomerAggregate,
    as_state,
    categories_of,
    empty_state,
)

_PROFILE_COLUMNS = ("user_id", "first_seen", "last_seen", "event_count", "purchase_count",
                    "revenue")  # fmt: skip
_AGGREGATE_COLUMNS = ("user_id", "last_purchase_at", "last_event", "category_purchases",
                      "category_spend", "cart", "cart_quantity", "cart_value", "seq",
                      "pending")  # fmt: skip
_JSON = ("last_event", "category_purchases", "category_spend", "cart")


def _profile_set(pg: bool) -> str:
    least, greatest = ("LEAST", "GREATEST") if pg else ("MIN", "MAX")
    t = "user_profiles"
    return (
        f"first_seen = COALESCE({least}({t}.first_seen, excluded.first_seen), excluded.first_seen),"
        f" last_seen = COALESCE({greatest}({t}.last_seen, excluded.last_seen), excluded.last_seen),"
        f" event_count = {t}.event_count + excluded.event_count,"
        f" purchase_count = {t}.purchase_count + excluded.purchase_count,"
        f" revenue = {t}.revenue + excluded.revenue"
    )


_AGGREGATE_SET = ", ".join(f"{c} = excluded.{c}" for c in _AGGREGATE_COLUMNS[1:])


def _upsert(session: Session, table: str, columns, rows: list[tuple], update: str) -> None:
    """One ``INSERT ... ON CONFLICT (user_id) DO UPDATE`` of ``rows`` (sorted by user id, the
    lock order of the event path); PostgreSQL stages them with ``COPY`` first. The statements
    go through SQLAlchemy's driver-level execute (plain tuples, no type processing), so its
    events and error handling see them."""
    connection = session.connection()
    names = ", ".join(columns)
    conflict = f"ON CONFLICT (user_id) DO UPDATE SET {update}"
    if not is_postgres(session):
        marks = ", ".join("?" * len(columns))
        connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}",
                                   rows)  # fmt: skip
        return
    stage = f"recsys_import_{table}"
    connection.exec_driver_sql(f"CREATE TEMP TABLE {stage} AS SELECT {names} FROM {table} "
                               "WITH NO DATA")  # fmt: skip
    with connection.connection.dbapi_connection.cursor() as cursor:
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    connection.exec_driver_sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
                               f"ORDER BY user_id {conflict}")  # fmt: skip
    connection.exec_driver_sql(f"DROP TABLE {stage}")


def _utc(stamps: pd.Series) -> np.ndarray:
    """Timezone-aware times as naive UTC ``datetime64`` (no per-row objects)."""
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def _texts(stamps: np.ndarray, pg: bool) -> list[str | None]:
    """Naive UTC ``datetime64`` values as the text each backend stores (PostgreSQL: ISO-8601
    with ``+00:00``; SQLite: SQLAlchemy's naive UTC format), in one Arrow pass."""
    return time_text(pa.array(stamps), iso=pg).to_pylist()


def _text(value: datetime | None, pg: bool) -> str | None:
    if value is None:
        return None
    return value.isoformat() if pg else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def profile_rows(events: pd.DataFrame, pg: bool) -> list[tuple]:
    """The ``user_profiles`` upsert rows of the imported ``events`` (loader frame); no I/O."""
    purchase = (events["event_type"] == PURCHASE).to_numpy()
    frame = pd.DataFrame({
        "user_id": events["user_id"].to_numpy(), "timestamp": _utc(events["timestamp"]),
        "purchase": purchase, "revenue": events["value"].where(purchase, 0.0).fillna(0.0),
    })  # fmt: skip
    groups = frame.groupby("user_id", sort=True)
    totals = groups.agg(first=("timestamp", "min"), last=("timestamp", "max"),
                        n=("purchase", "size"), purchases=("purchase", "sum"),
                        revenue=("revenue", "sum"))  # fmt: skip
    first, last = _texts(totals["first"].to_numpy(), pg), _texts(totals["last"].to_numpy(), pg)
    return list(zip(totals.index, first, last, totals["n"].tolist(),
                    totals["purchases"].astype(int).tolist(), totals["revenue"].tolist(),
                    strict=True))  # fmt: skip


def write_profiles(session: Session, rows: list[tuple]) -> int:
    _upsert(session, "user_profiles", _PROFILE_COLUMNS, rows, _profile_set(is_postgres(session)))
    return len(rows)


def update_profiles(session: Session, events: pd.DataFrame) -> int:
    """Fold the imported ``events`` (loader frame) into ``user_profiles``; returns users."""
    return write_profiles(session, profile_rows(events, is_postgres(session)))


def _stored_states(session: Session, users: list[str], lock: bool) -> dict[str, tuple]:
    """The stored aggregate state and seq of those ``users`` that have a row; with ``lock`` on
    PostgreSQL every user gets a row first and the rows are locked (``FOR UPDATE``) until the
    commit, as the event path's fold does, so concurrent appends fold one after the other."""
    table = CustomerAggregate.__table__
    lock = lock and is_postgres(session)
    if lock:
        empty = {**empty_state(), "seq": 0, "pending": False}
        insert = dialect_insert(session, table).on_conflict_do_nothing(index_elements=["user_id"])
        session.execute(insert, [{**empty, "user_id": u} for u in users])
    elif session.execute(select(table.c.user_id).limit(1)).first() is None:
        return {}  # an initial load: nothing to read back
    out = {}
    for start in range(0, len(users), 500):
        stmt = select(table).where(table.c.user_id.in_(users[start : start + 500]))
        for row in session.execute(stmt.with_for_update() if lock else stmt):
            out[row.user_id] = (as_state(row), row.seq or 0)
    return out


def _iso(stamps: np.ndarray) -> list[str]:
    """``datetime.isoformat(timespec="microseconds")`` of naive UTC times, in one Arrow pass."""
    return time_text(pa.array(stamps), iso=True).to_pylist()


def _carts(events: pd.DataFrame, states: dict[str, dict]) -> None:
    """Fold the cart events into ``states``: a purchase empties the item's line, so per
    (user, item) only the adds/removes after its last purchase are folded one by one."""
    kinds = events["event_type"].astype(str)
    frame = events.loc[kinds.isin([ADD, REMOVE, PURCHASE]).to_numpy() & events["item_id"].notna()
                       .to_numpy() & (events["item_id"] != "").to_numpy(),
                       ["user_id", "item_id", "quantity", "value"]]  # fmt: skip
    frame = frame.assign(kind=kinds.loc[frame.index], position=range(len(frame)))
    bought = frame[frame["kind"] == PURCHASE].groupby(["user_id", "item_id"])["position"].max()
    for user, item in bought.index:
        states[user]["cart"].pop(item, None)
    after = frame.join(bought.rename("bought"), on=["user_id", "item_id"])
    after = after[after["kind"] != PURCHASE]
    after = after[after["bought"].isna() | (after["position"] > after["bought"])]
    columns = [after[c].to_numpy() for c in ("user_id", "item_id", "kind", "quantity", "value")]
    for user, item, kind, quantity, value in zip(*columns, strict=True):
        cart = states[user]["cart"]
        if kind == ADD:
            line = cart.setdefault(item, {"quantity": 0, "value": 0.0})
            line["quantity"] += max(int(quantity), 1)
            line["value"] += 0.0 if value != value else float(value)  # NaN: no value
        elif item in cart:
            line = cart[item]
            left = line["quantity"] - max(int(quantity), 1)
            if left <= 0:
                del cart[item]
            else:
                line["value"] *= left / line["quantity"]
                line["quantity"] = left


def _json(value: dict) -> str:
    return json.dumps(value) if value else "{}"


def _levels(series: pd.Series) -> tuple[list, list]:
    """The two index levels of a grouped series as lists (cheaper than its tuples)."""
    index = series.index
    return index.get_level_values(0).tolist(), index.get_level_values(1).tolist()


@dataclass
class AggregateInputs:
    """What the fold of imported events reads from the store before it computes."""

    names: list[str]  # the events' users, sorted
    counts: dict[str, int]  # events per user
    stored: dict[str, tuple]  # user -> (stored state, seq), for users with a row
    categories: dict[str, str]  # purchased item -> catalogue category


def aggregate_inputs(session: Session, events: pd.DataFrame, *, lock: bool = False):
    """Read what :func:`aggregate_rows` needs (``lock``: see :func:`_stored_states`)."""
    counts = pd.Series(events["user_id"].to_numpy()).value_counts(sort=False).to_dict()
    names = sorted(counts)
    bought = events["item_id"][(events["event_type"].astype(str) == PURCHASE).to_numpy()]
    return AggregateInputs(names, counts, _stored_states(session, names, lock),
                           categories_of(session, bought.unique()))  # fmt: skip


def aggregate_rows(events: pd.DataFrame, inputs: AggregateInputs, pg: bool) -> list[tuple]:
    """The ``customer_aggregates`` upsert rows: ``events`` (a loader frame, appended after every
    stored event) folded onto the stored states, customers marked pending; no I/O."""
    users = events["user_id"].to_numpy()
    names, counts, stored = inputs.names, inputs.counts, inputs.stored
    states = {u: stored[u][0] if u in stored else empty_state() for u in names}
    kinds = events["event_type"].astype(str).to_numpy()
    latest = pd.DataFrame({"user_id": users, "kind": kinds, "at": _utc(events["timestamp"])})
    latest = latest.groupby(["user_id", "kind"], sort=False)["at"].max()
    for user, kind, stamp in zip(*_levels(latest), _iso(latest.to_numpy()), strict=True):
        last = states[user]["last_event"]
        if kind not in last or stamp > last[kind]:
            last[kind] = stamp
    purchases = latest.xs(PURCHASE, level="kind") if PURCHASE in set(kinds) else None
    for user, at in () if purchases is None else purchases.items():
        at = at.tz_localize(UTC).to_pydatetime()
        state = states[user]
        if state["last_purchase_at"] is None or at > state["last_purchase_at"]:
            state["last_purchase_at"] = at
    bought = kinds == PURCHASE
    category = events["item_id"][bought].map(inputs.categories)
    values = events["value"][bought].fillna(0.0).tolist()
    # one by one in commit order: the same float sums as the event path's fold
    for user, name, value in zip(users[bought].tolist(), category.tolist(), values, strict=True):
        if name is None or name != name:  # not in the catalogue / no category
            continue
        state = states[user]
        counts_of, spend_of = state["category_purchases"], state["category_spend"]
        counts_of[name] = counts_of.get(name, 0) + 1
        spend_of[name] = spend_of.get(name, 0.0) + value
    _carts(events, states)
    rows = []
    for user in names:
        state, cart = states[user], states[user]["cart"]
        state["cart_quantity"] = sum(line["quantity"] for line in cart.values())
        state["cart_value"] = round(sum(line["value"] for line in cart.values()), 6)
        seq = (stored[user][1] if user in stored else 0) + int(counts[user])
        rows.append((user, _text(state["last_purchase_at"], pg),
                     *(_json(state[name]) for name in _JSON),
                     state["cart_quantity"], state["cart_value"], seq, True))  # fmt: skip
    return rows


def write_aggregates(session: Session, rows: list[tuple]) -> int:
    _upsert(session, "customer_aggregates", _AGGREGATE_COLUMNS, rows, _AGGREGATE_SET)
    return len(rows)


def update_aggregates(session: Session, events: pd.DataFrame, *, lock: bool = False) -> int:
    """Fold the ``events`` (a loader frame, appended after every stored event) into
    ``customer_aggregates`` and mark their customers pending segment evaluation; returns the
    number of customers. ``lock``: see :func:`_stored_states` (the import locks the tables)."""
    inputs = aggregate_inputs(session, events, lock=lock)
    return write_aggregates(session, aggregate_rows(events, inputs, is_postgres(session)))


FOLD_COLUMNS = ("user_id", "item_id", "event_type", "timestamp", "quantity", "value")


def fold_rows(session: Session, rows: list[dict]) -> int:
    """The event path's profile and aggregate updates for a batch of newly inserted rows, in
    set-based form (same results as :func:`recsys.store.profiles.add_event_aggregates`)."""
    frame = pd.DataFrame.from_records(rows, columns=FOLD_COLUMNS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    touched = update_profiles(session, frame)
    update_aggregates(session, frame, lock=True)
    return touched
