"""Profile aggregates for segmentation, folded into ``customer_aggregates`` with every event.

:func:`fold_events` runs inside the transaction that inserts the events (called by
:func:`recsys.store.profiles.add_event_aggregates`), so the aggregates never disagree with the
committed events. Per customer it keeps the last purchase time, the last time of each event type,
purchases and spend per item category, and the open cart (items added and not bought or removed:
quantity and value, where the value is the ``value`` the add event carried). It also bumps
``seq`` and marks the row ``pending``: the segment evaluator clears ``pending`` after it has
evaluated the customer, so a crash between the event commit and the evaluation loses nothing.

:func:`recompute` folds the stored events again (in id order, the order they were committed) and
gives the same values; the RFM scores and the cluster are written by the batch job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, bindparam, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from recsys.data.event_check import ID_LENGTH
from recsys.store.db import dialect_insert, is_postgres
from recsys.store.tables import Base, BigId, Item, JSONObject, UTCDateTime

PURCHASE, ADD, REMOVE = "purchase", "add_to_cart", "remove_from_cart"
STATE_FIELDS = (
    "last_purchase_at",
    "last_event",
    "category_purchases",
    "category_spend",
    "cart",
    "cart_quantity",
    "cart_value",
)


class CustomerAggregate(Base):
    """Per-customer aggregates for segments (see the module doc)."""

    __tablename__ = "customer_aggregates"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event: Mapped[dict[str, Any]] = mapped_column(JSONObject, default=dict)
    category_purchases: Mapped[dict[str, Any]] = mapped_column(JSONObject, default=dict)
    category_spend: Mapped[dict[str, Any]] = mapped_column(JSONObject, default=dict)
    cart: Mapped[dict[str, Any]] = mapped_column(JSONObject, default=dict)
    cart_quantity: Mapped[int] = mapped_column(BigId, default=0)
    cart_value: Mapped[float] = mapped_column(Float, default=0.0)
    rfm_r: Mapped[int | None] = mapped_column(Integer)
    rfm_f: Mapped[int | None] = mapped_column(Integer)
    rfm_m: Mapped[int | None] = mapped_column(Integer)
    cluster: Mapped[int | None] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigId, default=0)  # events folded so far
    pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


def empty_state() -> dict[str, Any]:
    """The aggregates of a customer without events."""
    return {
        "last_purchase_at": None,
        "last_event": {},
        "category_purchases": {},
        "category_spend": {},
        "cart": {},
        "cart_quantity": 0,
        "cart_value": 0.0,
    }


def fold(state: dict[str, Any], row: Mapping[str, Any], category: str | None) -> None:
    """Fold one event (in commit order) into ``state`` (from :func:`empty_state`)."""
    kind, ts, item = row["event_type"], row["timestamp"], row.get("item_id")
    stamp = ts.isoformat(timespec="microseconds")
    last = state["last_event"].get(kind)
    if last is None or stamp > last:  # ISO-8601 UTC text sorts like the times
        state["last_event"][kind] = stamp
    quantity = int(row.get("quantity") or 0)
    value = float(row.get("value") or 0.0)
    cart = state["cart"]
    if kind == PURCHASE:
        if state["last_purchase_at"] is None or ts > state["last_purchase_at"]:
            state["last_purchase_at"] = ts
        if category is not None:
            counts, spend = state["category_purchases"], state["category_spend"]
            counts[category] = counts.get(category, 0) + 1
            spend[category] = spend.get(category, 0.0) + value
        cart.pop(item, None)
    elif kind == ADD and item is not None:
        line = cart.setdefault(item, {"quantity": 0, "value": 0.0})
        line["quantity"] += max(quantity, 1)
        line["value"] += value
    elif kind == REMOVE and item in cart:
        line = cart[item]
        left = line["quantity"] - max(quantity, 1)
        if left <= 0:
            del cart[item]
        else:
            line["value"] *= left / line["quantity"]
            line["quantity"] = left
    state["cart_quantity"] = sum(line["quantity"] for line in cart.values())
    state["cart_value"] = round(sum(line["value"] for line in cart.values()), 6)


def as_state(row: CustomerAggregate | None) -> dict[str, Any]:
    """The foldable state of a stored row (copies, so folding does not alias the row)."""
    if row is None:
        return empty_state()
    return {
        "last_purchase_at": row.last_purchase_at,
        "last_event": dict(row.last_event or {}),
        "category_purchases": dict(row.category_purchases or {}),
        "category_spend": dict(row.category_spend or {}),
        "cart": {k: dict(v) for k, v in (row.cart or {}).items()},
        "cart_quantity": row.cart_quantity or 0,
        "cart_value": row.cart_value or 0.0,
    }


def categories_of(session: Session, item_ids: Iterable[str | None]) -> dict[str, str]:
    """Catalogue category of each of ``item_ids`` that has one."""
    wanted = sorted({i for i in item_ids if i is not None})
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = select(Item.item_id, Item.category).where(Item.item_id.in_(chunk))
        out.update({i: c for i, c in session.execute(stmt) if c})
    return out


def fold_events(session: Session, rows: Iterable[Mapping[str, Any]]) -> int:
    """Fold newly inserted events into ``customer_aggregates`` in the caller's transaction and
    mark their customers pending evaluation; returns the number of customers touched."""
    rows = list(rows)
    if not rows:
        return 0
    categories = categories_of(session, (r.get("item_id") for r in rows))
    users = sorted({r["user_id"] for r in rows})  # one lock order for concurrent appends
    ins = dialect_insert(session, CustomerAggregate.__table__)
    session.execute(
        ins.on_conflict_do_nothing(index_elements=["user_id"]),
        [{**empty_state(), "user_id": u, "seq": 0, "pending": False} for u in users],
    )
    stmt = select(CustomerAggregate).where(CustomerAggregate.user_id.in_(users))
    if is_postgres(session):
        stmt = stmt.with_for_update()
    stored = {a.user_id: a for a in session.scalars(stmt)}
    states = {u: as_state(stored.get(u)) for u in users}
    counts = dict.fromkeys(users, 0)
    for row in rows:
        fold(states[row["user_id"]], row, categories.get(row.get("item_id")))
        counts[row["user_id"]] += 1
    table = CustomerAggregate.__table__
    stmt = (
        update(table)
        .where(table.c.user_id == bindparam("uid"))
        .values(
            **{name: bindparam(name) for name in STATE_FIELDS},
            seq=table.c.seq + bindparam("n"),
            pending=True,
        )
    )
    session.execute(stmt, [{**states[u], "uid": u, "n": counts[u]} for u in users])
    session.expire_all()
    return len(users)


def recompute(session: Session, user_ids: Iterable[str] | None = None) -> dict[str, dict]:
    """The aggregates of ``user_ids`` (default: everyone with events) folded from the stored
    events in commit order; equal to what :func:`fold_events` kept."""
    from recsys.store.tables import Event

    stmt = select(Event.user_id, Event.item_id, Event.event_type, Event.timestamp)
    stmt = stmt.add_columns(Event.quantity, Event.value).order_by(Event.id)
    if user_ids is not None:
        stmt = stmt.where(Event.user_id.in_(list(user_ids)))
    events = [row._asdict() for row in session.execute(stmt)]
    categories = categories_of(session, (e["item_id"] for e in events))
    states: dict[str, dict] = {}
    for event in events:
        state = states.setdefault(event["user_id"], empty_state())
        fold(state, event, categories.get(event["item_id"]))
    return states
