"""A store with a shop's events and rule segments of several node kinds, and its segment state
(memberships, entry/exit counts) to compare two refreshes by."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from recsys.data.loaders import load_events
from recsys.segments.service import SegmentService
from recsys.store import Store, read_session
from recsys.store.segments import SegmentEvent, SegmentMember

# One time window only ("recent-buyers"): the generated shop's events are from early 2026, so
# on the real clock it is empty; a test clock at 2026-04-01 fills it and a year later empties it.
SEGMENTS = {
    "recent-buyers": {
        "type": "performed",
        "event_type": "purchase",
        "window": {"seconds": 120 * 86400},
    },
    "big-spenders": {"type": "attribute", "path": "revenue", "op": "gte", "value": 60.0},
    "viewers": {"type": "performed", "event_type": "view", "count": {"op": "gte", "value": 12}},
    "half": {"type": "random_bucket", "percent": 50, "salt": "shards"},
    "champions-or-buyers": {
        "type": "or",
        "children": [
            {"type": "rfm", "group": "Champions"},
            {"type": "attribute", "path": "purchase_count", "op": "gte", "value": 3},
        ],
    },
}


def fill_store(store: Store, shop: Path) -> None:
    """The shop's events (profiles follow) and :data:`SEGMENTS`, not evaluated yet."""
    store.events.append(load_events(shop / "events.parquet"))
    service = SegmentService(store)
    for segment_id, node in SEGMENTS.items():
        service.create(segment_id, node, segment_id=segment_id, evaluate=False)


def segment_state(store: Store) -> tuple[set[tuple[str, str]], Counter]:
    """``({(segment, user)} members, Counter{(segment, kind): segment events})``."""
    with read_session(store.engine) as session:
        members = set(session.execute(select(SegmentMember.segment_id, SegmentMember.user_id)))
        counted = session.execute(
            select(SegmentEvent.segment_id, SegmentEvent.kind, func.count()).group_by(
                SegmentEvent.segment_id, SegmentEvent.kind
            )
        )
        events = Counter({(s, k): int(n) for s, k, n in counted})
    return {tuple(m) for m in members}, events
