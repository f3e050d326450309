"""Prometheus metrics read from the store at scrape time: segment entries/exits and campaign
messages.

Both happen in many processes (the API on every event, ``recsys segments refresh`` as a batch
or Ray job, one or several campaign workers), most of which no Prometheus scrapes; the store is
where they all meet, so the service's ``/metrics`` reads them there:

- ``recsys_segment_changes_total{kind="entry"|"exit"}``: rows appended to the ``segment_events``
  outbox since this process started, read by primary key past the last row counted (cheap). A
  row committed after a row with a higher id (concurrent PostgreSQL writers) is not counted.
- ``recsys_campaign_sends{status}``: campaign sends by status now (``sent``, ``pending``,
  ``failed`` ...), counted over the status index at most every ``min_interval_s``. Messages sent
  per minute is its ``delta``; a gauge, because erasure deletes a customer's rows.

Every ingress replica reports the same store, so a dashboard takes ``max`` over instances.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from recsys.store import Store, read_session
from recsys.store.campaigns import SendRow
from recsys.store.segments import SegmentEvent

logger = logging.getLogger(__name__)

SEGMENT_KINDS = ("entry", "exit")
SEND_STATUSES = ("pending", "sending", "sent", "suppressed", "failed", "dead")


class StoreActivityCollector:
    """A prometheus_client collector over the store (register it with a registry)."""

    def __init__(self, store: Store, min_interval_s: float = 15.0) -> None:
        self.store = store
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()  # scrapes may overlap
        self._cursor: int | None = None  # the last segment_events id counted
        self._changes = dict.fromkeys(SEGMENT_KINDS, 0)
        self._sends = dict.fromkeys(SEND_STATUSES, 0)
        self._sends_read_at = -float("inf")

    def describe(self):
        return list(self._families())

    def _families(self) -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        changes = CounterMetricFamily(
            "recsys_segment_changes",
            "Segment entries and exits written (all processes, read from the store).",
            labels=["kind"],
        )
        sends = GaugeMetricFamily(
            "recsys_campaign_sends",
            "Campaign sends by status (all workers, read from the store).",
            labels=["status"],
        )
        return changes, sends

    def _read(self) -> None:
        now = time.monotonic()
        with read_session(self.store.engine) as s:
            if self._cursor is None:  # count from now on, like any counter of this process
                self._cursor = s.scalar(select(func.max(SegmentEvent.id))) or 0
            stmt = (
                select(SegmentEvent.kind, func.count(), func.max(SegmentEvent.id))
                .where(SegmentEvent.id > self._cursor)
                .group_by(SegmentEvent.kind)
            )
            for kind, count, last in s.execute(stmt):
                self._changes[kind] = self._changes.get(kind, 0) + count
                self._cursor = max(self._cursor, last)
            if now - self._sends_read_at >= self.min_interval_s:
                stmt = select(SendRow.status, func.count()).group_by(SendRow.status)
                counts = dict(s.execute(stmt).all())
                self._sends = {status: counts.get(status, 0) for status in SEND_STATUSES}
                self._sends.update(counts)
                self._sends_read_at = now

    def collect(self):
        with self._lock:
            try:
                self._read()
            except Exception as exc:  # a scrape must not fail with the database: last values
                logger.warning("store activity metrics not read: %s", exc)
            changes, sends = self._families()
            for kind, value in sorted(self._changes.items()):
                changes.add_metric([kind], value)
            for status, value in sorted(self._sends.items()):
                sends.add_metric([status], value)
        yield changes
        yield sends
