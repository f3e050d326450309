"""Real-time membership: events, the outbox, the sweep, recovery, references and RFM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recsys.errors import ConflictError
from recsys.ingest import EventIngestor
from recsys.segments.definitions import SegmentDefinitionError
from recsys.segments.engine import SegmentEngine
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService, rfm_segment_id

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CART_ABANDONERS = {
    "type": "not_performed_since",
    "event_type": "purchase",
    "since": "add_to_cart",
    "seconds": 3600,
}
SHOE_FANS = {
    "type": "performed",
    "event_type": "purchase",
    "category": "shoes",
    "count": {"op": "gte", "value": 2},
    "window": {"seconds": 30 * 86400},
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def service(store, clock):
    store.items.upsert(
        [{"item_id": "s1", "category": "shoes"}, {"item_id": "h1", "category": "hats"}]
    )
    return SegmentService(store, SegmentEngine(store, clock=clock))


@pytest.fixture
def ingestor(store, service):
    ingestor = EventIngestor(store)
    ingestor.subscribe("segments", service.engine.on_events)
    return ingestor


def _ev(user, item, kind, at, value=None):
    return {"user_id": user, "item_id": item, "event_type": kind, "timestamp": at.isoformat(),
            "value": value}  # fmt: skip


def _segments_of(store, user):
    return [s["segment_id"] for s in store.segments.user_segments(user)]


def test_an_event_moves_the_customer_in_and_the_outbox_records_it(store, service, ingestor, clock):
    service.create("Shoe fans", SHOE_FANS, segment_id="shoe-fans")
    ingestor.ingest([_ev("u1", "s1", "purchase", T0 - timedelta(days=2), 30.0)], now=T0)
    assert _segments_of(store, "u1") == []
    ingestor.ingest([_ev("u1", "s1", "purchase", T0 - timedelta(days=1), 40.0)], now=T0)
    assert _segments_of(store, "u1") == ["shoe-fans"]
    events = store.segments.events()
    assert [(e["segment_id"], e["user_id"], e["kind"], e["cause"]) for e in events] == [
        ("shoe-fans", "u1", "entry", "event")
    ]
    # The window slides: 30 days after the first purchase the sweep takes the customer out.
    clock.now = T0 + timedelta(days=29)
    assert service.engine.sweep() == 1
    assert _segments_of(store, "u1") == []
    assert store.segments.events(after_id=events[-1]["id"])[0]["kind"] == "exit"


def test_cart_abandoners_enter_by_the_clock_and_leave_on_purchase(store, service, ingestor, clock):
    service.create("Cart abandoners", CART_ABANDONERS, segment_id="abandoners")
    ingestor.ingest([_ev("u2", "h1", "add_to_cart", T0, 15.0)], now=T0)
    assert _segments_of(store, "u2") == []
    clock.now = T0 + timedelta(minutes=61)
    service.engine.sweep()
    assert _segments_of(store, "u2") == ["abandoners"]
    ingestor.ingest([_ev("u2", "h1", "purchase", clock.now, 15.0)], now=clock.now)
    assert _segments_of(store, "u2") == []


def test_events_committed_but_not_evaluated_are_recovered(store, service):
    service.create("Shoe buyers", {"type": "performed", "event_type": "purchase",
                                   "category": "shoes"}, segment_id="shoe-buyers")  # fmt: skip
    # Appended without the subscriber: a crash after the event commit, before evaluation.
    store.events.append([_ev("u3", "s1", "purchase", T0, 10.0)])
    assert store.segments.pending_users() == ["u3"]
    assert SegmentEngine(store, clock=service.engine.clock).recover() == 1
    assert _segments_of(store, "u3") == ["shoe-buyers"]
    assert store.segments.pending_users() == []


def test_references_unknown_segments_and_cycles_are_refused(service):
    service.create("A", {"type": "random_bucket", "percent": 50}, segment_id="a")
    service.create("B", {"type": "in_segment", "segment_id": "a"}, segment_id="b")
    with pytest.raises(SegmentDefinitionError, match=r"^definition.children\[1\].segment_id: "
                       "unknown segment 'nope'"):  # fmt: skip
        service.create("C", {"type": "and", "children": [
            {"type": "in_segment", "segment_id": "a"},
            {"type": "in_segment", "segment_id": "nope"}]}, segment_id="c")  # fmt: skip
    with pytest.raises(SegmentDefinitionError, match="a cycle of segments: a -> b -> a"):
        service.update("a", {"definition": {"type": "in_segment", "segment_id": "b"}})
    with pytest.raises(ConflictError, match="used by b"):
        service.delete("a")


def test_in_segment_and_random_bucket(store, service, ingestor):
    service.create("Half", {"type": "random_bucket", "percent": 50, "salt": "x"}, segment_id="half")
    service.create("Not half", {"type": "not", "child": {"type": "in_segment",
                                "segment_id": "half"}}, segment_id="other")  # fmt: skip
    ingestor.ingest([_ev(f"u{i}", "h1", "view", T0) for i in range(40)], now=T0)
    halves = [_segments_of(store, f"u{i}") for i in range(40)]
    assert all(len(s) == 1 for s in halves)
    assert 8 < sum(s == ["half"] for s in halves) < 32


def test_rfm_groups_from_the_batch_job_and_in_real_time(store, service, ingestor, clock):
    events = []
    for i in range(10):  # u0 bought once long ago ... u9 often and recently
        for k in range(i + 1):
            events.append(_ev(f"c{i}", "h1", "purchase", T0 - timedelta(days=100 - 10 * i + k),
                              10.0 * (i + 1)))  # fmt: skip
    ingestor.ingest(events, now=T0)
    summary = refresh(store, engine=service.engine)
    assert summary["rfm_scored"] == 10 and summary["customers"] == 10
    assert _segments_of(store, "c9") == [rfm_segment_id("Champions")]
    assert _segments_of(store, "c0") == [rfm_segment_id("Lost")]
    lost = store.segments.size(rfm_segment_id("Lost"))
    # Real time: c0 buys a lot now and leaves "Lost" against the recorded edges.
    ingestor.ingest([_ev("c0", "h1", "purchase", T0, 5000.0)], now=T0)
    assert _segments_of(store, "c0") != [rfm_segment_id("Lost")]
    assert store.segments.size(rfm_segment_id("Lost")) == lost - 1


def test_preview_and_stats(store, service, ingestor, clock):
    ingestor.ingest([_ev("p1", "s1", "purchase", T0, 5.0), _ev("p2", "h1", "view", T0)], now=T0)
    node = {"type": "attribute", "path": "category_purchases.shoes", "op": "gte", "value": 1}
    from recsys.segments.definitions import parse_definition

    assert service.engine.preview(parse_definition(node)) == {"count": 1, "sample": ["p1"]}
    service.create("Shoes", node, segment_id="shoes")
    stats = service.stats("shoes", days=3)
    assert stats["size"] == 1 and stats["days"][-1]["entries"] == 1
