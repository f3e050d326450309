"""The durable event log: append in one transaction, read back, export for training.

``append`` returns only after its transaction has committed, so a caller may acknowledge the
events as soon as it returns; an event survives a crash of the process from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select

from recsys.data.errors import DataValidationError
from recsys.data.event_check import FIELDS, ValidEvents, validate_events
from recsys.data.schemas import EVENTS
from recsys.store.bulk_aggregates import fold_rows
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.erasure import drop_erased, erased_hashes
from recsys.store.frames import events_frame, frame_records, is_frame
from recsys.store.profiles import add_event_aggregates
from recsys.store.tables import Event, utcnow

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

BATCH_FOLD_MIN = 32  # from this many new events a batch folds set-based (bulk_aggregates)


@dataclass(frozen=True)
class AppendResult:
    """What one ``append`` did: ``inserted`` new events, ``duplicates`` skipped by event_id;
    ``rows`` are the newly stored events (what subscribers of the event path are told about)."""

    inserted: int
    duplicates: int
    rows: tuple = ()


def _checked(events: Iterable[Mapping[str, Any]] | pd.DataFrame) -> ValidEvents:
    """The events as table rows, all-or-nothing: the first bad record fails the whole batch."""
    if is_frame(events):
        records, source = frame_records(events, FIELDS), "<frame>"
    else:
        records, source = list(events), "<records>"
    rows, rejections = validate_events(records)
    if rejections:
        first = rejections[0]
        raise DataValidationError(source, first.problem, row=first.index + 1, column=first.field)
    return rows


class EventStore:
    """Append-only event log with per-user profile aggregates.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised (:func:`init_schema`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, events: Iterable[Mapping[str, Any]] | pd.DataFrame) -> AppendResult:
        """Store canonical events and update their users' profiles, all in one transaction.

        Parameters
        ----------
        events : iterable of dict or DataFrame
            Canonical records (keys of :data:`FIELDS`; ``timestamp`` a timezone-aware datetime
            or ISO-8601 text) or a canonical events frame (``validate_frame(..., EVENTS)``),
            optionally with an ``event_id`` column.

        Returns
        -------
        AppendResult
            Events inserted, and events skipped because their ``event_id`` was already stored
            (or repeated earlier in the same batch). Committed when this returns.

        Raises
        ------
        DataValidationError
            A record fails :func:`recsys.data.event_check.validate_events` (names its 1-based
            row and field); nothing is stored. Rows that already passed it (``ValidEvents``)
            are not checked again.
        sqlalchemy.exc.SQLAlchemyError
            The database refused the batch; the transaction is rolled back, nothing is stored.
        """
        checked = events if isinstance(events, ValidEvents) else _checked(events)
        now = utcnow()
        rows, seen, duplicates = [], set(), 0
        for row in checked:
            row["ingested_at"] = now
            if row["event_id"] is not None:
                if row["event_id"] in seen:
                    duplicates += 1
                    continue
                seen.add(row["event_id"])
            rows.append(row)
        if not rows:
            return AppendResult(0, duplicates)
        with write_session(self.engine) as session:
            if seen:
                stmt = dialect_insert(session, Event.__table__)
                stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"])
                stored = set(session.execute(stmt.returning(Event.event_id), rows).scalars())
                fresh = [r for r in rows if r["event_id"] is None or r["event_id"] in stored]
                duplicates += len(rows) - len(fresh)
            else:
                session.execute(insert(Event.__table__), rows)
                fresh = rows
            if len(fresh) >= BATCH_FOLD_MIN:  # stream batches: set-based, no ORM objects
                fold_rows(session, fresh)
            else:
                add_event_aggregates(session, fresh)
        logger.debug("appended %d events (%d duplicates)", len(fresh), duplicates)
        return AppendResult(len(fresh), duplicates, tuple(fresh))

    def recent(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` events of ``user_id``, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        stmt = (
            select(Event)
            .where(Event.user_id == user_id)
            .order_by(Event.timestamp.desc(), Event.id.desc())
            .limit(limit)
        )
        with read_session(self.engine) as session:
            return [_as_dict(e) for e in session.scalars(stmt)]

    def count(self) -> int:
        """Number of stored events."""
        with read_session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Event)) or 0)

    def user_ids(self) -> list[str]:
        """Distinct users with at least one stored event, sorted."""
        with read_session(self.engine) as session:
            stmt = select(Event.user_id).distinct().order_by(Event.user_id)
            return list(session.scalars(stmt))

    def export_frame(self, since: datetime | None = None) -> pd.DataFrame:
        """A canonical events frame for training, oldest first, without erased users.

        Parameters
        ----------
        since : datetime, optional
            Only events with ``timestamp >= since`` (timezone-aware).

        Returns
        -------
        DataFrame
            Exactly the columns of ``recsys.data.schemas.EVENTS`` with their canonical dtypes.
        """
        cols = Event.__table__.c
        stmt = select(*(cols[name] for name in EVENTS.names)).order_by(cols.timestamp, cols.id)
        if since is not None:
            stmt = stmt.where(cols.timestamp >= since)
        with read_session(self.engine) as session:
            rows = session.execute(stmt).all()
            erased = erased_hashes(session)
        return drop_erased(events_frame(rows), erased)


def _as_dict(event: Event) -> dict[str, Any]:
    out = {name: getattr(event, name) for name in FIELDS}
    out["properties"] = out["properties"] or {}
    out["ingested_at"] = event.ingested_at
    return out
