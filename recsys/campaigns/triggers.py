"""Triggers: read the committed events and the ``segment_events`` outbox in id order from a
recorded position, and run the schedules.

Each consumer batch is one transaction that enrols the matching customers, exits enrolments whose
campaign exit event happened, wakes ``wait_until`` steps whose event or segment condition came
true, and moves the cursor — so every event is acted on exactly once, even across a crash.
On PostgreSQL ids are handed out before commit, so a row with a smaller id can become visible
after a larger one; the consumers only read rows older than ``lag_s`` to let those land first.
"""

from __future__ import annotations

import logging
import time
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import Engine, select

from recsys.campaigns import definitions as d
from recsys.campaigns.enrol import enrol, finish
from recsys.store.campaigns import DueStepRow, EnrolmentRow, get_cursor
from recsys.store.db import write_session
from recsys.store.segments import SegmentEvent, SegmentMember
from recsys.store.tables import Event, UserProfile

logger = logging.getLogger(__name__)
Campaigns = dict[str, tuple[str, d.Campaign]]


def _active(campaigns: Campaigns) -> list[tuple[str, d.Campaign]]:
    return [(cid, c) for cid, (status, c) in campaigns.items() if status == "active"]


class TriggerConsumer:
    """Consumes events and segment events for every active campaign (see the module doc)."""

    def __init__(self, engine: Engine, campaigns: Callable[[], Campaigns],
                 clock: Callable[[], datetime], lag_s: float | None = None,
                 since: Callable[[], dict[str, datetime]] = dict) -> None:  # fmt: skip
        self.engine = engine
        self.campaigns = campaigns
        self.since = since  # campaign id -> when it was last activated or changed
        self.clock = clock
        self.lag_s = (
            (1.0 if engine.dialect.name == "postgresql" else 0.0) if lag_s is None else lag_s
        )

    def _visible_before(self) -> datetime:
        return datetime.fromtimestamp(time.time() - self.lag_s, UTC)  # wall time, not the clock

    def events(self, limit: int = 1000) -> int:
        """Act on the next ``limit`` committed events; returns how many were read."""
        campaigns = _active(self.campaigns())
        now = self.clock()
        with write_session(self.engine) as s:
            cursor = get_cursor(s, "events")
            stmt = select(Event).where(Event.id > cursor.position).order_by(Event.id).limit(limit)
            if self.lag_s:
                stmt = stmt.where(Event.ingested_at <= self._visible_before())
            rows = [
                {"id": e.id, "user_id": e.user_id, "item_id": e.item_id,
                 "event_type": e.event_type, "timestamp": e.timestamp,
                 "properties": e.properties or {}, "ingested_at": e.ingested_at}
                for e in s.scalars(stmt)
            ]  # fmt: skip
            if not rows:
                return 0
            for campaign_id, campaign in campaigns:
                exits = campaign.exit_on
                if exits is not None:
                    self._exit(s, campaign_id, [r for r in rows if exits.matches(r)], now)
                trigger = campaign.trigger
                if isinstance(trigger, d.EventTrigger):
                    # Only events that arrived since the campaign went live enrol: a first
                    # start over a store full of history must not mail every old cart.
                    since = self.since().get(campaign_id)
                    matched = [
                        r
                        for r in rows
                        if trigger.matches(r) and (since is None or r["ingested_at"] >= since)
                    ]
                    enrol(s, campaign_id, campaign, [(r["user_id"], _context(r), r["timestamp"])
                                                     for r in matched], now)  # fmt: skip
            self._wake(s, rows, lambda step, r: step.event is not None and step.event.matches(r))
            cursor.position, cursor.at = rows[-1]["id"], now
        return len(rows)

    def segment_events(self, limit: int = 1000) -> int:
        """Act on the next ``limit`` segment entries/exits; returns how many were read."""
        campaigns = _active(self.campaigns())
        now = self.clock()
        with write_session(self.engine) as s:
            cursor = get_cursor(s, "segment_events")
            stmt = select(SegmentEvent).where(SegmentEvent.id > cursor.position)
            stmt = stmt.order_by(SegmentEvent.id).limit(limit)
            if self.lag_s:
                stmt = stmt.where(SegmentEvent.at <= self._visible_before())
            rows = [
                {"id": e.id, "user_id": e.user_id, "segment_id": e.segment_id, "kind": e.kind,
                 "at": e.at}
                for e in s.scalars(stmt)
            ]  # fmt: skip
            if not rows:
                return 0
            for campaign_id, campaign in campaigns:
                trigger = campaign.trigger
                if isinstance(trigger, d.SegmentTrigger):
                    matched = [
                        (r["user_id"], {"segment_id": r["segment_id"], "kind": r["kind"]}, r["at"])
                        for r in rows
                        if r["segment_id"] == trigger.segment_id and r["kind"] == trigger.on
                    ]
                    enrol(s, campaign_id, campaign, matched, now)

            def condition(step: d.WaitUntil, r: dict) -> bool:
                cond = step.segment
                return (cond is not None and cond.segment_id == r["segment_id"]
                        and (r["kind"] == "entry") == cond.member)  # fmt: skip

            self._wake(s, rows, condition)
            cursor.position, cursor.at = rows[-1]["id"], now
        return len(rows)

    def _exit(self, s, campaign_id: str, rows: list[dict], now: datetime) -> None:
        if not rows:
            return
        first = {}
        for r in rows:
            first.setdefault(r["user_id"], r["timestamp"])
        stmt = select(EnrolmentRow.id, EnrolmentRow.user_id, EnrolmentRow.enrolled_at).where(
            EnrolmentRow.campaign_id == campaign_id,
            EnrolmentRow.status == "active",
            EnrolmentRow.user_id.in_(sorted(first)),
        )
        ids = [eid for eid, user, at in s.execute(stmt) if first[user] >= at]
        finish(s, ids, "exited", now)

    def _wake(self, s, rows: list[dict], matches: Callable[[d.WaitUntil, dict], bool]) -> None:
        """Make waiting ``wait_until`` steps whose condition came true due now."""
        users = sorted({r["user_id"] for r in rows})
        campaigns = dict(_active(self.campaigns()))
        stmt = select(DueStepRow).where(
            DueStepRow.user_id.in_(users), DueStepRow.state.is_not(None)
        )
        for due in s.scalars(stmt):
            step = campaigns.get(due.campaign_id, d.Exit(type="exit"))
            step = step.steps.get(due.step_id) if isinstance(step, d.Campaign) else None
            if not isinstance(step, d.WaitUntil) or "since" not in (due.state or {}):
                continue
            since = datetime.fromisoformat(due.state["since"])
            for r in rows:
                at = r.get("timestamp") or r.get("at")
                if r["user_id"] == due.user_id and at >= since and matches(step, r):
                    due.state = {**due.state, "outcome": "match"}
                    due.due_at = min(due.due_at, self.clock())
                    break

    def schedules(self) -> int:
        """Enrol the audiences of schedules that are due; returns customers enrolled."""
        now = self.clock()
        total = 0
        for campaign_id, campaign in _active(self.campaigns()):
            trigger = campaign.trigger
            if not isinstance(trigger, d.ScheduleTrigger):
                continue
            with write_session(self.engine) as s:
                cursor = get_cursor(s, f"schedule:{campaign_id}")
                if cursor.at is None:  # first sight: the first run is the next tick
                    cursor.at = next_run(trigger, campaign.time_zone, now, first=True)
                if cursor.at > now:
                    continue
                users = audience(s, trigger.segment_id)
                total += enrol(
                    s,
                    campaign_id,
                    campaign,
                    [(u, {"schedule": cursor.at.isoformat()}, now) for u in users],
                    now,
                )
                cursor.at, cursor.position = (
                    next_run(trigger, campaign.time_zone, now),
                    cursor.position + 1,
                )
        return total


def next_run(trigger: d.ScheduleTrigger, zone: str, now: datetime, first: bool = False) -> datetime:
    """The next run after ``now`` (an interval schedule runs at once the first time)."""
    if trigger.interval_seconds is not None:
        return now if first else now + timedelta(seconds=trigger.interval_seconds)
    local = now.astimezone(zoneinfo.ZoneInfo(zone))
    return croniter(trigger.cron, local).get_next(datetime).astimezone(UTC)


def audience(s, segment_id: str | None) -> list[str]:
    """Members of ``segment_id``, or every known customer."""
    if segment_id is not None:
        stmt = select(SegmentMember.user_id).where(SegmentMember.segment_id == segment_id)
    else:
        stmt = select(UserProfile.user_id)
    return list(s.scalars(stmt))


def _context(row: dict[str, Any]) -> dict[str, Any]:
    return {"event_type": row["event_type"], "item_id": row["item_id"],
            "properties": row["properties"], "at": row["timestamp"].isoformat()}  # fmt: skip
