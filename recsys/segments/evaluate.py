"""Evaluating definitions against one customer, and what each definition depends on.

A :class:`Customer` is the flat document of :mod:`recsys.segments.fields` plus (only when a
``performed`` node needs them) the customer's events. :func:`compile_segments` analyses every
rule segment once: the event types that can change it (an event re-evaluates only those
segments), whether the clock alone can change it (the sweep re-evaluates those) and how far back
its ``performed`` nodes look.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from recsys.segments import definitions as d
from recsys.segments.fields import CLOCK_FIELDS, compare, field_reader

ANY = "*"  # any event type
_CART = frozenset(("add_to_cart", "remove_from_cart", "purchase"))
_PURCHASE_FIELDS = ("last_purchase_at", "purchase_count", "revenue", "category_", "rfm_")


@dataclass(frozen=True)
class EventView:
    """The parts of a stored event that ``performed`` nodes look at."""

    event_type: str
    timestamp: datetime
    item_id: str | None
    category: str | None
    properties: dict[str, Any] | None


@dataclass
class Customer:
    """One customer as segments see it."""

    user_id: str
    doc: dict[str, Any]
    events: list[EventView] = field(default_factory=list)
    static: frozenset[str] = frozenset()  # static segments the customer is in


@dataclass
class Compiled:
    """A rule segment ready to evaluate."""

    segment_id: str
    node: Any
    triggers: frozenset[str]  # event types that can change it; ANY for all
    time_dependent: bool
    event_types: frozenset[str]  # types its performed nodes read
    lookback: timedelta | datetime | None  # how far back events are needed; None: all history
    needs_events: bool
    test: Test = field(default=None, repr=False)  # type: ignore[assignment]  # compile_node(node)

    def __post_init__(self) -> None:
        if self.test is None:
            self.test = compile_node(self.node)

    def triggered_by(self, types: set[str] | None) -> bool:
        """Whether events of ``types`` (``None``: unknown, e.g. after a crash) can change it."""
        return types is None or ANY in self.triggers or bool(self.triggers & types)


def _attribute_triggers(path: str) -> frozenset[str]:
    root = path.partition(".")[0]
    if root == "last_event":
        return frozenset((path.partition(".")[2],))
    if root.startswith("cart_"):
        return _CART
    if root.startswith(_PURCHASE_FIELDS) or root == "days_since_last_purchase":
        return frozenset(("purchase",))
    return frozenset((ANY,))  # counts, first/last seen, and attributes of a new customer


def _leaf(node: Any) -> tuple[frozenset[str], bool, frozenset[str], Any, bool]:
    """``(triggers, time_dependent, event types read, lookback, needs events)`` of a leaf."""
    if isinstance(node, d.Attribute):
        return _attribute_triggers(node.path), node.path in CLOCK_FIELDS, frozenset(), None, False
    if isinstance(node, d.Performed):
        window, lookback = node.window, None
        if window is not None:
            lookback = timedelta(seconds=window.seconds) if window.seconds else window.start
        kinds = frozenset((node.event_type,))
        return kinds, window is not None, kinds, lookback, True
    if isinstance(node, d.NotPerformedSince):
        kinds = {node.event_type, node.since or node.event_type}
        return frozenset(kinds), True, frozenset(), None, False
    if isinstance(node, d.Rfm):
        return frozenset(("purchase",)), False, frozenset(), None, False
    if isinstance(node, d.RandomBucket):
        return frozenset((ANY,)), False, frozenset(), None, False
    return frozenset(), False, frozenset(), None, False  # cluster: the batch job sets it


def _older(a: Any, b: Any, now: datetime) -> Any:
    """The lookback reaching further into the past (``None`` = all history wins)."""
    if a is None or b is None:
        return None
    start_a = now - a if isinstance(a, timedelta) else a
    start_b = now - b if isinstance(b, timedelta) else b
    return a if start_a <= start_b else b


def compile_segments(definitions: dict[str, Any]) -> dict[str, Compiled]:
    """Analyse rule definitions (``segment id -> node``); ``in_segment`` inherits its target's
    dependencies (static targets have none). Definitions must be free of cycles."""
    out: dict[str, Compiled] = {}
    now = datetime.now().astimezone()

    def build(segment_id: str) -> Compiled:
        if segment_id in out:
            return out[segment_id]
        triggers: set[str] = set()
        types: set[str] = set()
        timed, needs, lookback, first = False, False, None, True
        for _, node in d.walk(definitions[segment_id]):
            if isinstance(node, d.InSegment):
                if node.segment_id not in definitions:
                    continue
                leaf = build(node.segment_id)
                parts = (leaf.triggers, leaf.time_dependent, leaf.event_types)
                parts += (leaf.lookback, leaf.needs_events)
            else:
                parts = _leaf(node)
            triggers |= parts[0]
            timed |= parts[1]
            types |= parts[2]
            if parts[4]:
                lookback = parts[3] if first else _older(lookback, parts[3], now)
                needs, first = True, False
        compiled = Compiled(
            segment_id,
            definitions[segment_id],
            frozenset(triggers),
            timed,
            frozenset(types),
            lookback,
            needs,
        )
        out[segment_id] = compiled
        return compiled

    for segment_id in definitions:
        build(segment_id)
    return out


def bucket(user_id: str, salt: str) -> float:
    """A stable number in [0, 100) for the customer (``random_bucket``)."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 1_000_000 / 10_000


def _window(window: d.Window | None, now: datetime) -> tuple[datetime | None, datetime | None]:
    if window is None:
        return None, None
    if window.seconds:
        return now - timedelta(seconds=window.seconds), None
    return window.start, window.end


def _performed(node: d.Performed) -> Test:
    """A ``performed`` node as a closure (its filters read once)."""
    kind, window, category = node.event_type, node.window, node.category
    items = frozenset(node.item_ids) if node.item_ids else None
    properties = tuple(node.properties.items()) if node.properties else ()
    op, want = node.count.op, node.count.value

    def test(m: Matcher) -> bool:
        start, end = _window(window, m.now)
        n = 0
        for e in m.customer.events:
            if e.event_type != kind or (start and e.timestamp < start):
                continue
            if (end and e.timestamp >= end) or (category and e.category != category):
                continue
            if items is not None and e.item_id not in items:
                continue
            if properties and any((e.properties or {}).get(k) != v for k, v in properties):
                continue
            n += 1
        return n >= want if op == "gte" else n < want if op == "lt" else n == want

    return test


def _stamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _not_performed_since(node: d.NotPerformedSince, customer: Customer, now: datetime) -> bool:
    last = customer.doc.get("last_event") or {}
    absent = _stamp(last.get(node.event_type))
    if node.since is None:
        anchor = absent or customer.doc.get("first_seen")
        return anchor is not None and (now - anchor).total_seconds() >= node.seconds
    anchor = _stamp(last.get(node.since))
    if anchor is None or (absent is not None and absent >= anchor):
        return False
    return (now - anchor).total_seconds() >= node.seconds


Test = Callable[["Matcher"], bool]
"""A compiled node: whether the matcher's customer matches it."""


def compile_node(node: Any) -> Test:
    """``node`` as a closure over its parsed parts (built once per definition, not per event);
    :meth:`Matcher.matches` is the same function applied at once."""
    if isinstance(node, d.And):
        parts = tuple(compile_node(child) for child in node.children)
        return lambda m: all(part(m) for part in parts)
    if isinstance(node, d.Or):
        parts = tuple(compile_node(child) for child in node.children)
        return lambda m: any(part(m) for part in parts)
    if isinstance(node, d.Not):
        inner = compile_node(node.child)
        return lambda m: not inner(m)
    if isinstance(node, d.Attribute):
        read, op, value = field_reader(node.path), node.op, node.value
        return lambda m: compare(read(m.customer.doc, m.now), op, value)
    if isinstance(node, d.Performed):
        return _performed(node)
    if isinstance(node, d.NotPerformedSince):
        return lambda m: _not_performed_since(node, m.customer, m.now)
    if isinstance(node, d.Rfm):
        group = node.group
        return lambda m: m.customer.doc.get("rfm_group") == group
    if isinstance(node, d.Cluster):
        cluster = node.cluster_id
        return lambda m: m.customer.doc.get("cluster") == cluster
    if isinstance(node, d.InSegment):
        target = node.segment_id
        return lambda m: m.segment(target)
    if isinstance(node, d.RandomBucket):
        salt, percent = node.salt, node.percent
        return lambda m: bucket(m.customer.user_id, salt) < percent
    raise TypeError(f"unknown segment node {type(node).__name__}")


class Matcher:
    """Evaluates nodes for one customer at one time; ``in_segment`` is resolved through
    ``segments`` (rule definitions) or the customer's static memberships, memoised."""

    def __init__(self, customer: Customer, now: datetime, segments: dict[str, Compiled]):
        self.customer, self.now, self.segments = customer, now, segments
        self._memo: dict[str, bool] = {}

    def segment(self, segment_id: str) -> bool:
        """Whether the customer is in the (rule or static) segment ``segment_id``."""
        memo = self._memo
        if segment_id not in memo:
            compiled = self.segments.get(segment_id)
            memo[segment_id] = (
                compiled.test(self) if compiled is not None else segment_id in self.customer.static
            )
        return memo[segment_id]

    def matches(self, node: Any) -> bool:
        """Whether the customer matches ``node`` (compiled on the spot: for one-off checks)."""
        return compile_node(node)(self)
