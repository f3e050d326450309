"""Privacy tables: the durable queue of pending scrubs of derived data, and consent history.

``privacy_scrubs`` holds one row per (erasure receipt, target) where the erased user's rows must
still be removed from derived data (model bundles in the registry, local bundle caches, the
SQLite write-ahead log). It names the user only by :func:`~recsys.store.erasure.user_hash`, so
the queue itself holds no personal data; a scrubber finds the user's rows by hashing the ids it
reads. A row is ``pending`` until a scrub of its target succeeds, then ``done`` with the
artifacts it touched.

``consent_history`` records every consent change (channel, granted, source, time); the current
consent of a channel is the latest row (:func:`current_consents`). It names the user, so it has
an erase and an export hook like every per-user table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from recsys.data.event_check import ID_LENGTH
from recsys.store.erasure import erasure_hooks, rows_exporter
from recsys.store.tables import Base, BigId, Erasure, JSONObject, UTCDateTime, utcnow

TABLES = ("privacy_scrubs", "consent_history")
PENDING, DONE = "pending", "done"
RETRY_BASE = timedelta(seconds=30)  # back-off of a failed scrub: 30 s, 1 min, 2 min ... 1 h
RETRY_MAX = timedelta(hours=1)


class ScrubRow(Base):
    """One target whose copy of an erased user's data must be (or was) scrubbed."""

    __tablename__ = "privacy_scrubs"
    __table_args__ = (Index("ix_privacy_scrubs_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(String(32), index=True)
    user_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[list[Any] | None] = mapped_column(JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsentChange(Base):
    """One change of a customer's consent to one channel."""

    __tablename__ = "consent_history"
    __table_args__ = (Index("ix_consent_history_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(64))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def scrub_dict(row: ScrubRow) -> dict[str, Any]:
    """A scrub row as JSON-ready data (no user id: there is none)."""
    return {
        "target": row.target,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "artifacts": row.artifacts or [],
        "created_at": row.created_at.isoformat(),
        "next_attempt_at": row.next_attempt_at.isoformat() if row.status == PENDING else None,
        "done_at": row.done_at.isoformat() if row.done_at else None,
    }


def enqueue_scrubs(session: Session, receipt_id: str, hashed: str, targets: list[str]) -> None:
    """Queue ``targets`` for the erased user ``hashed`` (in the caller's transaction)."""
    now = utcnow()
    for target in targets:
        session.add(
            ScrubRow(receipt_id=receipt_id, user_hash=hashed, target=target, status=PENDING,
                     attempts=0, created_at=now, next_attempt_at=now)
        )  # fmt: skip


def due_scrubs(session: Session, now: datetime, limit: int = 100) -> list[ScrubRow]:
    """Pending scrubs whose next attempt is due, oldest first."""
    stmt = (
        select(ScrubRow)
        .where(ScrubRow.status == PENDING, ScrubRow.next_attempt_at <= now)
        .order_by(ScrubRow.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def finish_scrub(session: Session, scrub_id: int, artifacts: list[Any]) -> None:
    """Mark a scrub done with the artifacts it touched."""
    now = utcnow()
    session.execute(
        update(ScrubRow)
        .where(ScrubRow.id == scrub_id)
        .values(status=DONE, artifacts=artifacts, done_at=now, last_error=None,
                attempts=ScrubRow.attempts + 1)
    )  # fmt: skip


def fail_scrub(session: Session, scrub_id: int, attempts: int, error: str) -> None:
    """Record a failed attempt and schedule the next one (exponential back-off)."""
    delay = min(RETRY_BASE * (2 ** min(attempts, 10)), RETRY_MAX)
    session.execute(
        update(ScrubRow)
        .where(ScrubRow.id == scrub_id)
        .values(attempts=attempts + 1, last_error=error[:2000], next_attempt_at=utcnow() + delay)
    )


def scrubs_of(session: Session, receipt_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """``{receipt_id: [scrub dicts]}`` for the given receipts."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in receipt_ids}
    stmt = select(ScrubRow).where(ScrubRow.receipt_id.in_(receipt_ids)).order_by(ScrubRow.id)
    for row in session.scalars(stmt):
        out[row.receipt_id].append(scrub_dict(row))
    return out


def consent_changes(
    user_id: str, before: Mapping[str, bool] | None, after: Mapping[str, bool] | None,
    source: str, at: datetime,
) -> list[dict[str, Any]]:  # fmt: skip
    """One consent-history row per channel whose consent differs between ``before`` and
    ``after`` (a channel missing from ``after`` is withdrawn)."""
    before, after = dict(before or {}), dict(after or {})
    rows = []
    for channel in sorted(set(before) | set(after)):
        granted = bool(after.get(channel, False))
        if channel in before and bool(before[channel]) == granted:
            continue
        rows.append({"user_id": user_id, "channel": channel, "granted": granted,
                     "source": source, "at": at})  # fmt: skip
    return rows


def record_consents(session: Session, rows: list[dict[str, Any]]) -> int:
    """Write :func:`consent_changes` rows in one statement (an import writes millions)."""
    if rows:
        session.execute(insert(ConsentChange.__table__), rows)
    return len(rows)


def consent_history(session: Session, user_id: str) -> list[dict[str, Any]]:
    """Every recorded consent change of ``user_id``, oldest first."""
    stmt = select(ConsentChange).where(ConsentChange.user_id == user_id)
    return [
        {"channel": c.channel, "granted": c.granted, "source": c.source, "at": c.at.isoformat()}
        for c in session.scalars(stmt.order_by(ConsentChange.at, ConsentChange.id))
    ]


def current_consents(session: Session, user_id: str) -> dict[str, bool]:
    """The consent per channel derived from the history: the latest change of each channel."""
    return {c["channel"]: c["granted"] for c in consent_history(session, user_id)}


def _erase_consents(session: Session, user_id: str) -> int:
    stmt = delete(ConsentChange).where(ConsentChange.user_id == user_id)
    return session.execute(stmt).rowcount


erasure_hooks.register("consent_history", _erase_consents, rows_exporter(ConsentChange))


def list_erasures(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest erasure receipts with their scrubs and how many are still pending."""
    stmt = select(Erasure).order_by(Erasure.erased_at.desc(), Erasure.receipt_id).limit(limit)
    receipts = list(session.scalars(stmt))
    scrubs = scrubs_of(session, [r.receipt_id for r in receipts])
    return [
        {
            "receipt_id": r.receipt_id,
            "user_hash": r.user_hash,
            "erased_at": r.erased_at.isoformat(),
            "deleted": dict(r.counts or {}),
            "scrubs": scrubs[r.receipt_id],
            "pending": sum(s["status"] == PENDING for s in scrubs[r.receipt_id]),
        }
        for r in receipts
    ]
