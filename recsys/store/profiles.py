"""User profiles: customer attributes plus event aggregates kept current on every append.

The aggregates (first/last seen, event and purchase counts, revenue) are updated by
:func:`add_event_aggregates` inside the transaction that inserts the events, so a profile never
disagrees with the committed events. ``revenue`` sums ``value`` over purchase events (``value``
of a purchase is its amount; missing values count as 0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recsys.data.errors import DataValidationError
from recsys.store.db import dialect_insert, is_postgres, read_session, write_session
from recsys.store.frames import is_frame
from recsys.store.profile_aggregates import fold_events
from recsys.store.tables import UserProfile

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PURCHASE = "purchase"
_ATTRIBUTE_FIELDS = ("email", "country", "consents", "attributes")


@dataclass
class _Totals:
    first_seen: datetime
    last_seen: datetime
    event_count: int = 0
    purchase_count: int = 0
    revenue: float = 0.0


def add_event_aggregates(session: Session, rows: Iterable[Mapping[str, Any]]) -> int:
    """Fold newly inserted event rows into ``user_profiles`` (creating missing profiles).

    Runs in the caller's transaction; returns the number of profiles touched. Users are
    upserted in id order so concurrent appends lock profile rows in the same order.
    """
    rows = list(rows)
    totals: dict[str, _Totals] = {}
    for row in rows:
        ts = row["timestamp"]
        t = totals.get(row["user_id"])
        if t is None:
            t = totals[row["user_id"]] = _Totals(ts, ts)
        elif ts < t.first_seen:
            t.first_seen = ts
        elif ts > t.last_seen:
            t.last_seen = ts
        t.event_count += 1
        if row["event_type"] == PURCHASE:
            t.purchase_count += 1
            t.revenue += row["value"] or 0.0
    if not totals:
        return 0
    values = [
        {
            "user_id": user_id,
            "first_seen": t.first_seen,
            "last_seen": t.last_seen,
            "event_count": t.event_count,
            "purchase_count": t.purchase_count,
            "revenue": t.revenue,
        }
        for user_id, t in sorted(totals.items())
    ]
    least, greatest = (func.least, func.greatest) if is_postgres(session) else (func.min, func.max)
    stmt = dialect_insert(session, UserProfile.__table__)
    ex, cur = stmt.excluded, UserProfile.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[cur.user_id],
        set_={
            # A profile created by upsert_users has no first/last seen yet.
            "first_seen": func.coalesce(least(cur.first_seen, ex.first_seen), ex.first_seen),
            "last_seen": func.coalesce(greatest(cur.last_seen, ex.last_seen), ex.last_seen),
            "event_count": cur.event_count + ex.event_count,
            "purchase_count": cur.purchase_count + ex.purchase_count,
            "revenue": cur.revenue + ex.revenue,
        },
    )
    session.execute(stmt, values)
    fold_events(session, rows)  # the aggregates segments need, in the same transaction
    return len(values)


def _json_object(value: Any, row: int, column: str, source: str) -> dict[str, Any] | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataValidationError(
                source, f"invalid JSON ({exc.msg})", row=row, column=column
            ) from None
    if not isinstance(value, dict):
        raise DataValidationError(source, "must be a JSON object", row=row, column=column)
    return value or None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value).strip() or None


class ProfileStore:
    """Read user profiles and write their customer attributes (email, country, consents ...).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_users(self, users: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Insert or update customer attributes (canonical ``USERS`` records); one transaction.

        Aggregates are left alone. Returns the number of users written.

        Raises
        ------
        DataValidationError
            A record without ``user_id`` or with a non-object ``consents``/``attributes``.
        """
        source = "<frame>" if is_frame(users) else "<records>"
        records = users.to_dict("records") if is_frame(users) else list(users)
        values = []
        for i, rec in enumerate(records, start=1):
            user_id = _text(rec.get("user_id"))
            if user_id is None:
                raise DataValidationError(source, "empty user_id", row=i, column="user_id")
            values.append(
                {
                    "user_id": user_id,
                    "email": _text(rec.get("email")),
                    "country": _text(rec.get("country")),
                    "consents": _json_object(rec.get("consents"), i, "consents", source),
                    "attributes": _json_object(rec.get("attributes"), i, "attributes", source),
                }
            )
        if not values:
            return 0
        values.sort(key=lambda v: v["user_id"])
        with write_session(self.engine) as session:
            stmt = dialect_insert(session, UserProfile.__table__)
            stmt = stmt.on_conflict_do_update(
                index_elements=[UserProfile.__table__.c.user_id],
                set_={name: stmt.excluded[name] for name in _ATTRIBUTE_FIELDS},
            )
            session.execute(stmt, values)
        return len(values)

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The profile of ``user_id`` as a dict, or ``None`` when there is none."""
        with read_session(self.engine) as session:
            profile = session.get(UserProfile, user_id)
            if profile is None:
                return None
            return {a.key: getattr(profile, a.key) for a in UserProfile.__mapper__.column_attrs}

    def count(self) -> int:
        """Number of profiles."""
        with read_session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(UserProfile)) or 0)
