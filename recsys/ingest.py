"""The one event path: validate each event, commit the valid ones, then tell the subscribers.

Every source of events — ``POST /v1/events`` today, stream consumers (RabbitMQ, Kafka) later —
goes through :class:`EventIngestor`, so validation, idempotency (``event_id``) and what happens
after the commit are the same everywhere. The commit also updates the customers' profiles (same
transaction, see ``recsys.store``); session vectors are derived from the stored events at request
time. Segments and campaigns subscribe with :meth:`EventIngestor.subscribe` to react to the
committed events (entry/exit of segments, campaign enrolment).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recsys.data.event_check import validate_events
from recsys.data.records import Rejection
from recsys.store import Store

logger = logging.getLogger(__name__)

Subscriber = Callable[[list[dict]], None]


@dataclass
class IngestResult:
    """What one batch did: ``accepted`` = new + re-delivered events; ``rejected`` one per bad
    event (its index in the batch, the field, the problem); ``committed`` = the new rows."""

    accepted: int
    duplicates: int
    rejected: list[Rejection]
    committed: list[dict] = field(default_factory=list)


class EventIngestor:
    """Validate, commit and publish batches of event records (JSON-like dicts)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._subscribers: list[tuple[str, Subscriber]] = []

    def subscribe(self, name: str, callback: Subscriber) -> None:
        """Call ``callback(rows)`` with every committed batch of new events (after the commit; a
        failing subscriber is logged and never loses or fails the acknowledged events)."""
        self._subscribers.append((name, callback))

    def ingest(self, records: Sequence[dict], now: datetime | None = None) -> IngestResult:
        """Validate ``records`` one by one; commit the valid ones in one transaction.

        Validation is :func:`recsys.data.event_check.validate_events` (unknown fields, unstorable
        text, the file rules, the store's limits). A record without a timestamp happened ``now``
        (default: the current time). Returns only after the commit, so the caller may
        acknowledge ``accepted`` events.
        """
        rows, rejected = validate_events(records, now=now or datetime.now(UTC))
        if not rows:
            return IngestResult(0, 0, rejected)
        result = self.store.events.append(rows)
        committed = list(result.rows)
        self._publish(committed)
        return IngestResult(
            result.inserted + result.duplicates, result.duplicates, rejected, committed
        )

    def _publish(self, rows: list[dict]) -> None:
        for name, callback in self._subscribers:
            try:
                callback(rows)
            except Exception:  # acknowledged events must not depend on a subscriber
                logger.exception("event subscriber %s failed on %d events", name, len(rows))
