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

from recsys.data.errors import DataValidationError
from recsys.data.records import Rejection, validate_records
from recsys.store import Store, check_event

logger = logging.getLogger(__name__)

Subscriber = Callable[[list[dict]], None]


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored by every backend (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode (lone surrogate at position {exc.start})"
    return None


def _record_text_problem(record: dict) -> tuple[str, str] | None:
    """The first field holding unstorable text (keys and nested values included; iterative, so
    no depth limit). NUL is left to the store's own checks, which name it."""
    for name, value in record.items():
        stack = [name, value]
        while stack:
            current = stack.pop()
            if isinstance(current, dict):
                stack.extend(current.keys())
                stack.extend(current.values())
            elif isinstance(current, list):
                stack.extend(current)
            elif isinstance(current, str):
                problem = text_problem(current.replace("\x00", ""))
                if problem:
                    shown = str(name).encode("utf-8", "backslashreplace").decode("utf-8")
                    return shown, f"{shown} {problem}"
    return None


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

        A record without a timestamp happened ``now`` (default: the current time). Returns only
        after the commit, so the caller may acknowledge ``accepted`` events.
        """
        stamp = (now or datetime.now(UTC)).isoformat()
        records = [
            r if not isinstance(r, dict) or r.get("timestamp") not in (None, "")
            else {**r, "timestamp": stamp}
            for r in records
        ]  # fmt: skip
        rejected: list[Rejection] = []
        usable = []
        for position, record in enumerate(records):
            found = _record_text_problem(record) if isinstance(record, dict) else None
            if found is None:
                usable.append(position)
            else:
                rejected.append(Rejection(position, found[0], found[1]))
        frame, rejections = validate_records([records[p] for p in usable])
        rejected += [Rejection(usable[r.index], r.field, r.problem) for r in rejections]
        rows = []
        for local, row in zip(frame.index, frame.to_dict("records"), strict=True):
            position = usable[local]
            event_id = records[position].get("event_id")
            row["event_id"] = None if event_id is None else str(event_id)
            row["item_id"] = row["item_id"] or None
            row["session_id"] = row["session_id"] or None
            try:
                rows.append(check_event(row, row=position))
            except DataValidationError as exc:
                rejected.append(Rejection(position, exc.column, exc.problem))
        rejected.sort(key=lambda r: r.index)
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
