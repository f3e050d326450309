"""The per-event path (DBAPI statements, compiled definitions, per-type plans) gives the same
customers and memberships as the batch evaluation, on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from recsys.ingest import EventIngestor
from recsys.segments.documents import CUSTOMER, customer_doc, events_of, load_customers
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService
from recsys.store import read_session
from recsys.store.db import SQLITE_SYNCHRONOUS
from recsys.store.segments import RawStatement, realtime_transaction

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400
KINDS = ["view", "view", "add_to_cart", "remove_from_cart", "purchase"]
DEFINITIONS = {
    "shoe-fans": {"type": "performed", "event_type": "purchase", "category": "shoes",
                  "count": {"op": "gte", "value": 2}, "window": {"seconds": 30 * DAY}},
    "abandoners": {"type": "not_performed_since", "event_type": "purchase",
                   "since": "add_to_cart", "seconds": 3600},
    "big-spenders": {"type": "attribute", "path": "revenue", "op": "gte", "value": 60.0},
    "cart-half": {"type": "and", "children": [
        {"type": "attribute", "path": "cart_value", "op": "gt", "value": 10},
        {"type": "random_bucket", "percent": 50, "salt": "x"}]},
    "champions": {"type": "rfm", "group": "Champions"},
    "browsers": {"type": "or", "children": [
        {"type": "performed", "event_type": "view", "count": {"op": "gte", "value": 3},
         "window": {"seconds": 7 * DAY}},
        {"type": "attribute", "path": "days_since_last_purchase", "op": "gt", "value": 3}]},
    "no-hats": {"type": "not", "child": {"type": "attribute",
                "path": "category_purchases.hats", "op": "exists"}},
    "viewed-lately": {"type": "attribute", "path": "last_event.view", "op": "exists"},
    "spender-browsers": {"type": "and", "children": [
        {"type": "in_segment", "segment_id": "big-spenders"},
        {"type": "in_segment", "segment_id": "browsers"}]},
}  # fmt: skip


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _events(rng: random.Random, n: int, users: int = 12) -> list[dict]:
    return [
        {
            "user_id": f"u{rng.randrange(users)}",
            "item_id": rng.choice(["s1", "s2", "h1", "x1"]),
            "event_type": rng.choice(KINDS),
            "timestamp": (T0 - timedelta(seconds=rng.randrange(20 * DAY))).isoformat(),
            "value": round(rng.uniform(1, 40), 2),
        }
        for _ in range(n)
    ]


def _setup(store):
    store.items.upsert(
        [{"item_id": i, "category": c} for i, c in [("s1", "shoes"), ("s2", "shoes"),
                                                     ("h1", "hats"), ("x1", "socks")]]
    )  # fmt: skip
    clock = Clock(T0)
    service = SegmentService(store, SegmentEngine(store, clock=clock))
    return service, clock


def _memberships(store) -> set[tuple[str, str]]:
    out = set()
    for segment in store.segments.all():
        out |= {
            (segment["id"], m["user_id"]) for m in store.segments.members(segment["id"], limit=1000)
        }
    return out


def test_per_event_memberships_equal_a_full_evaluation(store):
    service, clock = _setup(store)
    rng = random.Random(7)
    store.events.append(_events(rng, 80))
    for segment_id, node in DEFINITIONS.items():
        service.create(segment_id, node, segment_id=segment_id)
    refresh(store, engine=service.engine)  # RFM edges and the built-in groups
    ingestor = EventIngestor(store)
    ingestor.subscribe("segments", service.engine.on_events)
    for k, event in enumerate(_events(rng, 120, users=15)):  # 3 customers are new
        clock.now = T0 + timedelta(minutes=k)
        ingestor.ingest([event], now=clock.now)
    ingestor.ingest(_events(rng, 30, users=15), now=clock.now)  # a batch of many customers
    realtime = _memberships(store)
    entries_exits = len(store.segments.events(limit=100000))
    assert entries_exits > 0 and realtime
    assert store.segments.pending_users() == []  # every watermark cleared
    # The batch evaluation of every segment finds nothing to change.
    assert service.engine.evaluate_all(cause="refresh") == 0
    assert _memberships(store) == realtime


def test_the_per_event_statements_read_what_the_batch_loader_reads(store):
    service, clock = _setup(store)
    store.events.append(_events(random.Random(3), 40, users=2))
    store.customers.put("u1", {"email": "a@example.com", "attributes": {"tier": {"level": 2}}})
    refresh(store, engine=service.engine)
    dialect = store.engine.dialect
    one = RawStatement(CUSTOMER, dialect)
    events = RawStatement(events_of(2, True), dialect)
    since = T0 - timedelta(days=10)
    with read_session(store.engine) as session:
        batch = load_customers(
            session, ["u0", "u1"], now=T0, event_types=frozenset(("purchase", "view")),
            lookback=since,
        )  # fmt: skip
    with realtime_transaction(store.engine, SQLITE_SYNCHRONOUS) as cursor:
        for user in ("u0", "u1"):
            doc = customer_doc(one.rows(cursor, {"uid": user})[0])
            assert doc == batch[user].doc
            assert doc["first_seen"].tzinfo is not None and isinstance(doc["last_event"], dict)
            params = {"uid": user, "t0": "purchase", "t1": "view", "since": since}
            rows = sorted(events.rows(cursor, params), key=lambda r: (r[1], r[0], r[2]))
            want = sorted(
                ((e.event_type, e.timestamp, e.item_id, e.properties, e.category)
                 for e in batch[user].events),
                key=lambda r: (r[1], r[0], r[2]),
            )  # fmt: skip
            assert rows == want and rows


def test_a_purchase_is_scored_against_the_rfm_edges_recorded_last(store):
    """The per-event path keeps the RFM edges between events and reads them again when the batch
    job (here: another process, through the store) records new ones."""
    service, clock = _setup(store)
    ingestor = EventIngestor(store)
    ingestor.subscribe("segments", service.engine.on_events)
    buy = {"user_id": "u1", "item_id": "s1", "event_type": "purchase", "value": 30.0}
    high = {
        "r": [-3.0, -2.0, -1.0, -0.5],
        "f": [5.0, 6.0, 7.0, 8.0],
        "m": [500.0, 600.0, 700.0, 800.0],
    }
    low = {"r": [-90.0, -60.0, -30.0, -10.0], "f": [0.5, 0.6, 0.7, 0.8], "m": [1.0, 2.0, 3.0, 4.0]}

    def buy_now(minutes: int) -> tuple:
        clock.now = T0 + timedelta(minutes=minutes)
        ingestor.ingest([{**buy, "timestamp": clock.now.isoformat()}], now=clock.now)
        doc = customer_doc(_customer_row(store, "u1"))
        return doc["rfm_r"], doc["rfm_f"], doc["rfm_m"]

    store.segments.put_state("rfm_edges", high)
    assert buy_now(0) == (5, 1, 1)
    store.segments.put_state("rfm_edges", low)
    assert buy_now(1) == (5, 5, 5)
    assert store.segments.pending_users() == []


def _customer_row(store, user_id: str) -> tuple:
    with realtime_transaction(store.engine, SQLITE_SYNCHRONOUS) as cursor:
        return RawStatement(CUSTOMER, store.engine.dialect).rows(cursor, {"uid": user_id})[0]
