"""The durable event log: append in one transaction, read back, export for training.

``append`` returns only after its transaction has committed, so a caller may acknowledge the
events as soon as it returns; an event survives a crash of the process from then on.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select

from recsys.data.errors import DataValidationError
from recsys.data.schemas import EVENT_TYPES, EVENTS, EVENTS_WITHOUT_ITEM
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.erasure import erased_hashes, user_hash
from recsys.store.frames import events_frame, frame_records, is_frame
from recsys.store.profiles import add_event_aggregates
from recsys.store.tables import EVENT_ID_LENGTH, ID_LENGTH, Event, utcnow

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FIELDS = ("event_id", *EVENTS.names)
"""Keys an event record may carry: the canonical ``EVENTS`` columns plus ``event_id``."""
_EVENT_TYPES = frozenset(EVENT_TYPES)
_TYPES_TEXT = ", ".join(EVENT_TYPES)
MAX_QUANTITY = 2**63 - 1  # the BIGINT column's range


@dataclass(frozen=True)
class AppendResult:
    """What one ``append`` did: ``inserted`` new events, ``duplicates`` skipped by event_id;
    ``rows`` are the newly stored events (what subscribers of the event path are told about)."""

    inserted: int
    duplicates: int
    rows: tuple = ()


def _none_if_blank(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _timestamp(value: Any, bad) -> datetime:
    if isinstance(value, datetime) and hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            bad("timestamp", f"cannot parse timestamp {value!r} (expected ISO-8601)")
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            value = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            bad("timestamp", f"timestamp {value!r} is out of range for unix seconds")
    if not isinstance(value, datetime):
        bad("timestamp", "missing timestamp" if value is None else "timestamp must be a datetime")
    if value.tzinfo is None:
        bad("timestamp", f"timestamp {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


def _properties(value: Any, bad) -> dict[str, Any] | None:
    value = _none_if_blank(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            bad("properties", f"invalid JSON ({exc.msg})")
    if value is None:
        return None
    if not isinstance(value, dict):
        bad("properties", "must be a JSON object")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad("properties", f"must be plain JSON ({exc})")
    if "\\u0000" in text:
        bad("properties", "must not contain NUL characters")
    return value or None


def _text(rec: Mapping[str, Any], name: str, bad, *, max_length: int = ID_LENGTH) -> str | None:
    value = _none_if_blank(rec.get(name))
    if value is None:
        return None
    if not isinstance(value, str):
        bad(name, f"{name} must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        bad(name, f"{name} is longer than {max_length} characters")
    if "\x00" in value:
        bad(name, f"{name} must not contain NUL characters")
    return value


def check_event(
    record: Mapping[str, Any], *, row: int = 1, source: str = "<record>"
) -> dict[str, Any]:
    """Check one canonical event record and return it as a table row (without ``ingested_at``).

    The checks are the store's own (types, required fields, ranges, lengths the database
    enforces), so a record that passes here is not refused by either backend. The HTTP layer can
    use this to reject bad events one by one before appending the good ones.

    Raises
    ------
    DataValidationError
        Naming ``source``, ``row`` and the column at fault.
    """

    def bad(column: str, problem: str):
        raise DataValidationError(source, problem, row=row, column=column)

    unknown = set(record) - set(FIELDS)
    if unknown:
        bad(sorted(unknown)[0], f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}")
    user_id = _text(record, "user_id", bad)
    if user_id is None:
        bad("user_id", "empty user_id")
    event_type = _none_if_blank(record.get("event_type")) or "interaction"
    if event_type not in _EVENT_TYPES:
        bad("event_type", f"unknown event type {event_type!r}; expected one of {_TYPES_TEXT}")
    item_id = _text(record, "item_id", bad)
    if item_id is None and event_type not in EVENTS_WITHOUT_ITEM:
        bad("item_id", "empty item_id")
    quantity = record.get("quantity", 1)
    quantity = 1 if _none_if_blank(quantity) is None else quantity
    if (
        not isinstance(quantity, numbers.Integral)
        or isinstance(quantity, bool)
        or not 0 <= quantity <= MAX_QUANTITY
    ):
        bad(
            "quantity",
            f"quantity must be a whole number from 0 to {MAX_QUANTITY}, got {quantity!r}",
        )
    value = _none_if_blank(record.get("value"))
    if value is not None and (
        not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value)
    ):
        bad("value", f"value must be a finite number, got {value!r}")
    return {
        "event_id": _text(record, "event_id", bad, max_length=EVENT_ID_LENGTH),
        "user_id": user_id,
        "item_id": item_id,
        "event_type": event_type,
        "timestamp": _timestamp(record.get("timestamp"), bad),
        "quantity": int(quantity),
        "value": None if value is None else float(value),
        "session_id": _text(record, "session_id", bad),
        "properties": _properties(record.get("properties"), bad),
    }


def _records(events: Iterable[Mapping[str, Any]] | pd.DataFrame) -> tuple[list, str]:
    if is_frame(events):
        return frame_records(events, FIELDS), "<frame>"
    return list(events), "<records>"


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
            A record fails the light checks (names its 1-based row and column); nothing is stored.
        sqlalchemy.exc.SQLAlchemyError
            The database refused the batch; the transaction is rolled back, nothing is stored.
        """
        records, source = _records(events)
        now = utcnow()
        rows, seen, duplicates = [], set(), 0
        for i, rec in enumerate(records, start=1):
            row = check_event(rec, row=i, source=source)
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
        frame = events_frame(rows)
        if erased and len(frame):
            users = frame["user_id"].unique()
            gone = {u for u in users if user_hash(u) in erased}
            if gone:
                frame = frame[~frame["user_id"].isin(gone)].reset_index(drop=True)
                logger.info("export skipped the events of %d erased user(s)", len(gone))
        return frame


def _as_dict(event: Event) -> dict[str, Any]:
    out = {name: getattr(event, name) for name in FIELDS}
    out["properties"] = out["properties"] or {}
    out["ingested_at"] = event.ingested_at
    return out
