"""Load customers as segments see them: profile, aggregates, RFM group and (when needed) events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from recsys.segments.evaluate import Customer, EventView
from recsys.segments.rfm import group_of
from recsys.store.db import read_session
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.tables import Event, Item, UserProfile, utcnow

CHUNK = 500  # ids per IN (...) list
_PROFILE = (
    "email",
    "country",
    "time_zone",
    "consents",
    "attributes",
    "first_seen",
    "last_seen",
    "event_count",
    "purchase_count",
    "revenue",
)
_AGGREGATE = (
    "last_purchase_at",
    "last_event",
    "category_purchases",
    "category_spend",
    "cart_quantity",
    "cart_value",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "cluster",
    "seq",
)


_IDS = bindparam("ids", expanding=True)
_COLUMNS = (
    UserProfile.user_id,
    *(getattr(UserProfile, n) for n in _PROFILE),
    CustomerAggregate.user_id,
    CustomerAggregate.cart,
    *(getattr(CustomerAggregate, n) for n in _AGGREGATE),
)
_FROM = select(*_COLUMNS).outerjoin(
    CustomerAggregate, CustomerAggregate.user_id == UserProfile.user_id
)
# Built once: the per-event path then skips statement construction and hits the compiled cache.
_CUSTOMERS = _FROM.where(UserProfile.user_id.in_(_IDS))
CUSTOMER = _FROM.where(UserProfile.user_id == bindparam("uid"))
"""One customer's row (the per-event path, run as a :class:`recsys.store.segments.RawStatement`)."""
_EVENT_COLUMNS = (Event.event_type, Event.timestamp, Event.item_id, Event.properties, Item.category)
_EVENTS = (
    select(Event.user_id, *_EVENT_COLUMNS)
    .outerjoin(Item, Item.item_id == Event.item_id)
    .where(Event.user_id.in_(_IDS), Event.event_type.in_(bindparam("types", expanding=True)))
)
_EVENTS_SINCE = _EVENTS.where(Event.timestamp >= bindparam("since"))
_N_PROFILE = len(_PROFILE)


def events_of(n_types: int, since: bool):
    """One customer's events of ``n_types`` types (binds ``uid``, ``t0``.., and ``since`` when
    ``since``), as :class:`EventView` fields; the per-event path compiles it once per shape."""
    stmt = (
        select(*_EVENT_COLUMNS)
        .outerjoin(Item, Item.item_id == Event.item_id)
        .where(Event.user_id == bindparam("uid"))
        .where(Event.event_type.in_([bindparam(f"t{i}") for i in range(n_types)]))
    )
    return stmt.where(Event.timestamp >= bindparam("since")) if since else stmt


def customer_doc(row: Sequence[Any]) -> dict[str, Any]:
    """The flat document of one row of :data:`CUSTOMER` (or the batch query)."""
    doc = dict(zip(_PROFILE, row[1 : 1 + _N_PROFILE], strict=True))
    rest = row[1 + _N_PROFILE :]
    if rest[0] is not None:  # has aggregates
        doc.update(zip(_AGGREGATE, rest[2:], strict=True))
        doc["cart_items"] = sorted(rest[1] or {})
    doc["rfm_group"] = group_of(doc.get("rfm_r"), doc.get("rfm_f"), doc.get("rfm_m"))
    return doc


def _chunks(ids: Sequence[str]):
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def load_customers(
    session: Session,
    user_ids: Sequence[str],
    *,
    now: datetime,
    event_types: frozenset[str] = frozenset(),
    lookback: timedelta | datetime | None = None,
    static: dict[str, set[str]] | None = None,
) -> dict[str, Customer]:
    """The customers ``user_ids`` that have a profile, with their events of ``event_types``
    since ``lookback`` (a span before ``now``, a time, or ``None`` for all) when any are asked
    for, and their static segment memberships ``static``."""
    docs: dict[str, dict[str, Any]] = {}
    conn = session.connection()
    for chunk in _chunks(user_ids):
        for row in conn.execute(_CUSTOMERS, {"ids": chunk}):
            docs[row[0]] = customer_doc(row)
    static = static or {}
    customers = {
        u: Customer(u, doc, static=frozenset(static.get(u, ()))) for u, doc in docs.items()
    }
    if event_types and customers:
        _attach_events(session, customers, event_types, lookback, now)
    return customers


def _attach_events(session, customers, event_types, lookback, now) -> None:
    since = now - lookback if isinstance(lookback, timedelta) else lookback
    stmt = _EVENTS if since is None else _EVENTS_SINCE
    conn, types = session.connection(), sorted(event_types)
    for chunk in _chunks(list(customers)):
        params = {"ids": chunk, "types": types, "since": since}
        for user, kind, ts, item, props, category in conn.execute(stmt, params):
            customers[user].events.append(EventView(kind, ts, item, category, props))


def customer_document(engine: Engine, user_id: str) -> dict[str, Any] | None:
    """One customer as segments see them (attributes, aggregates, RFM scores and group,
    cluster, open cart), or None when no profile is stored."""
    with read_session(engine) as session:
        found = load_customers(session, [user_id], now=utcnow())
    return found[user_id].doc if user_id in found else None
