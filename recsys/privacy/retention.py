"""Retention: delete rows older than their kind's retention (:mod:`recsys.privacy.settings`).

=========  ===========================================================  ==================
kind       rows                                                         age by
=========  ===========================================================  ==================
events     ``events``                                                   event ``timestamp``
messages   ``campaign_messages`` (rendered content), ``campaign_dead_letters``  creation time
audit      ``audit_log``                                                ``at``
=========  ===========================================================  ==================

Rows go in batches of :data:`BATCH` per transaction, so a first run over years of data does
not hold one huge lock. Training applies the same cutoff when it reads (:func:`drop_expired`),
so an event past its retention is never trained on even before the job has deleted it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, delete, select

from recsys.data.frame import pd
from recsys.privacy.settings import KINDS, PrivacySettings
from recsys.store.db import write_session
from recsys.store.tables import Base, utcnow

logger = logging.getLogger(__name__)

BATCH = 5000
FrameT = TypeVar("FrameT")
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "events": (("events", "timestamp"),),
    "messages": (("campaign_messages", "created_at"), ("campaign_dead_letters", "at")),
    "audit": (("audit_log", "at"),),
}
"""Per kind: ``(table, time column)`` pairs (tables not in this schema are skipped)."""


def _primary_key(table: Table):
    (column,) = table.primary_key.columns
    return column


def _delete_older(engine: Engine, table: Table, column: str, cutoff: datetime) -> int:
    key, deleted = _primary_key(table), 0
    while True:
        with write_session(engine) as session:
            ids = session.scalars(
                select(key).where(table.c[column] < cutoff).order_by(key).limit(BATCH)
            ).all()
            if ids:
                session.execute(delete(table).where(key.in_(ids)))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


def run_retention(
    engine: Engine, settings: PrivacySettings, *, now: datetime | None = None
) -> dict[str, Any]:
    """Delete every expired row; returns ``{kind: {"cutoff", "deleted": {table: n}}}`` and
    ``seconds``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    settings : PrivacySettings
        The retention of each kind (0 days: the kind is kept and skipped).
    now : datetime, optional
        Timezone-aware "now" (tests); default the current time.
    """
    now = now or utcnow()
    started = time.perf_counter()
    report: dict[str, Any] = {}
    for kind in KINDS:
        cutoff = settings.cutoff(kind, now)
        deleted = {}
        if cutoff is not None:
            for name, column in TABLES[kind]:
                table = Base.metadata.tables.get(name)
                if table is not None:
                    deleted[name] = _delete_older(engine, table, column, cutoff)
        report[kind] = {"cutoff": cutoff.isoformat() if cutoff else None, "deleted": deleted}
    report["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("retention: %s", report)
    return report


def drop_expired(
    frame: FrameT, settings: PrivacySettings, *, now: datetime | None = None
) -> FrameT:
    """``frame`` (events with a ``timestamp`` column) without the events past their retention.

    Returns ``frame`` itself when nothing is expired (or it has no timestamps).
    """
    cutoff = settings.cutoff("events", now or utcnow())
    if frame is None or cutoff is None or "timestamp" not in frame or not len(frame):
        return frame
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    expired = stamps < pd.Timestamp(cutoff)
    if not expired.any():
        return frame
    logger.info("dropped %d event(s) past the %d-day retention", int(expired.sum()),
                settings.days("events"))  # fmt: skip
    return frame[~expired.to_numpy()].reset_index(drop=True)
