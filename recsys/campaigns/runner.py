"""The step state machine: claim due steps in batches and run each enrolment forward until it
waits, sends, or ends — all in one transaction per batch.

The claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (several workers share the due
steps); on SQLite the batch transaction holds the write lock, so workers take turns. A crash
anywhere before the commit leaves the batch due again, untouched; after the commit every send
of the batch is recorded under its key, so nothing runs twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from recsys.campaigns import definitions as d
from recsys.campaigns.enrol import assign_arm, finish
from recsys.campaigns.sending import PendingSend, SendBatch, profiles
from recsys.store.campaigns import DueStepRow, EnrolmentRow
from recsys.store.db import is_postgres, write_session
from recsys.store.segments import SegmentMember
from recsys.store.tables import Event

logger = logging.getLogger(__name__)
PAUSED_RECHECK = timedelta(minutes=1)
MAX_ROUNDS = 16  # sends per enrolment per batch (a step graph has no loops)


def _field(profile: dict[str, Any], path: str) -> Any:
    root, _, rest = path.partition(".")
    value = profile.get(root)
    for part in rest.split(".") if rest else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def holds(condition: d.Condition, profile: dict[str, Any], segments: set[str]) -> bool:
    """Whether a branch condition holds for a customer."""
    if condition.segment is not None:
        return (condition.segment.segment_id in segments) == condition.segment.member
    value = _field(profile, condition.field or "")
    if condition.op == "exists":
        return value is not None
    if value is None:
        return False
    try:
        return {
            "eq": lambda: value == condition.value,
            "ne": lambda: value != condition.value,
            "gt": lambda: value > condition.value,
            "gte": lambda: value >= condition.value,
            "lt": lambda: value < condition.value,
            "lte": lambda: value <= condition.value,
        }[condition.op]()
    except TypeError:  # a text attribute compared with a number: not a match
        return False


class StepRunner:
    """Claims and runs due steps (see the module doc)."""

    def __init__(self, engine: Engine, campaigns: Callable[[], dict[str, tuple[str, d.Campaign]]],
                 sends: SendBatch, clock: Callable[[], datetime]) -> None:  # fmt: skip
        self.engine = engine
        self.campaigns = campaigns  # id -> (status, definition)
        self.sends = sends
        self.clock = clock

    def run(self, limit: int = 1000) -> dict[str, int]:
        """Run one batch of at most ``limit`` due steps; counts of what happened."""
        now = self.clock()
        counts = {"claimed": 0, "sent": 0, "suppressed": 0, "delayed": 0, "finished": 0}
        campaigns = self.campaigns()
        with write_session(self.engine) as s:
            stmt = select(DueStepRow).where(DueStepRow.due_at <= now)
            stmt = stmt.order_by(DueStepRow.due_at).limit(limit)
            if is_postgres(s):
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(s.scalars(stmt))
            counts["claimed"] = len(rows)
            if not rows:
                return counts
            ids = [r.enrolment_id for r in rows]
            enrolments = {
                e.id: e for e in s.scalars(select(EnrolmentRow).where(EnrolmentRow.id.in_(ids)))
            }
            users = sorted({r.user_id for r in rows})
            people = profiles(s, users)
            member_of = self._memberships(s, users)
            exited = self._exit_events(s, rows, enrolments, campaigns)
            ended: dict[str, list[str]] = {"completed": [], "exited": [], "cancelled": []}
            active = []
            for row in rows:
                status, campaign = campaigns.get(row.campaign_id, ("archived", None))
                if status == "paused":
                    row.due_at = now + PAUSED_RECHECK
                elif status != "active" or campaign is None:
                    ended["cancelled"].append(row.enrolment_id)
                elif row.enrolment_id in exited:
                    ended["exited"].append(row.enrolment_id)
                else:
                    active.append((row, campaign))
            for _ in range(MAX_ROUNDS):
                waiting: list[PendingSend] = []
                for row, campaign in active:
                    enrolment = enrolments[row.enrolment_id]
                    person = people.get(row.user_id, {})
                    end = self._walk(s, row, enrolment, campaign, person, member_of, now)
                    if end:
                        ended[end].append(row.enrolment_id)
                    elif isinstance(campaign.steps.get(row.step_id), d.Send) and row.due_at <= now:
                        waiting.append(
                            PendingSend(row, enrolment, row.campaign_id, campaign,
                                        campaign.steps[row.step_id])
                        )  # fmt: skip
                if not waiting:
                    break
                self.sends.run(s, waiting, now, people)
                active = []
                for p in waiting:
                    counts[p.outcome] += 1
                    if p.outcome != "delayed":
                        p.row.step_id, p.row.state = p.step.next or "", None
                        active.append((p.row, p.campaign))
            finished = {e for ids in ended.values() for e in ids}
            for row in rows:  # their changes would only be flushed to be deleted
                if row.enrolment_id in finished:
                    s.expunge(row)
            for status, enrolment_ids in ended.items():
                finish(s, enrolment_ids, status, now)
                counts["finished"] += len(enrolment_ids)
        return counts

    def _walk(
        self,
        s,
        row: DueStepRow,
        enrolment: EnrolmentRow,
        campaign: d.Campaign,
        person: dict,
        member_of: dict[str, set[str]],
        now: datetime,
    ) -> str | None:
        """Advance ``row`` through instant steps; returns how the enrolment ended, or None
        when it waits (due later) or stands at a send step."""
        for _ in range(len(campaign.steps) + 1):
            step = campaign.steps.get(row.step_id)
            if step is None or isinstance(step, d.Exit):
                return "completed"
            if isinstance(step, d.Send):
                return None
            if isinstance(step, d.Wait):
                if not step.next:
                    return "completed"
                row.step_id, row.state = step.next, None
                row.due_at = max(row.due_at, enrolment.enrolled_at) + timedelta(
                    seconds=step.duration_seconds
                )
                return None
            if isinstance(step, d.WaitUntil):
                state = dict(row.state or {})
                matched = state.get("outcome") == "match" or (
                    step.segment is not None
                    and (step.segment.segment_id in member_of.get(row.user_id, set()))
                    == step.segment.member
                )
                if not matched and "since" in state:
                    matched = self._event_since(s, row.user_id, step.event, state["since"])
                if matched or ("since" in state and row.due_at <= now):
                    target = step.on_match if matched else step.on_timeout
                    if not target:
                        return "completed"
                    row.step_id, row.state, row.due_at = target, None, now
                    continue
                row.state = {"since": now.isoformat()}
                row.due_at = now + timedelta(seconds=step.timeout_seconds)
                return None
            if isinstance(step, d.Branch):
                ok = holds(step.condition, person, member_of.get(row.user_id, set()))
                target = step.if_true if ok else step.if_false
            else:  # Split
                arm = assign_arm(row.campaign_id, row.user_id, step, salt=row.step_id)
                enrolment.arm, enrolment.arm_at = arm.name, now
                target = arm.next
            if not target:
                return "completed"
            row.step_id = target
        return "completed"

    @staticmethod
    def _event_since(s, user_id: str, match: d.EventMatch | None, since: str) -> bool:
        if match is None:
            return False
        stmt = select(Event.event_type, Event.properties).where(
            Event.user_id == user_id,
            Event.event_type == match.event_type,
            Event.timestamp >= datetime.fromisoformat(since),
        )
        return any(match.matches({"event_type": t, "properties": p}) for t, p in s.execute(stmt))

    @staticmethod
    def _memberships(s, users: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for start in range(0, len(users), 500):
            stmt = select(SegmentMember.user_id, SegmentMember.segment_id).where(
                SegmentMember.user_id.in_(users[start : start + 500])
            )
            for user, segment in s.execute(stmt):
                out.setdefault(user, set()).add(segment)
        return out

    @staticmethod
    def _exit_events(s, rows, enrolments, campaigns) -> set[str]:
        """Enrolments whose campaign exit event happened since they enrolled (checked here too,
        so a send never waits on the event consumer to have caught up)."""
        wanted = {}
        for row in rows:
            campaign = campaigns.get(row.campaign_id, (None, None))[1]
            if campaign is not None and campaign.exit_on is not None:
                wanted[row.enrolment_id] = (row.user_id, campaign.exit_on)
        if not wanted:
            return set()
        users = sorted({u for u, _ in wanted.values()})
        types = sorted({m.event_type for _, m in wanted.values()})
        since = min(enrolments[e].enrolled_at for e in wanted)
        seen: dict[str, list] = {}
        for start in range(0, len(users), 500):
            stmt = select(Event.user_id, Event.event_type, Event.properties, Event.timestamp).where(
                Event.user_id.in_(users[start : start + 500]),
                Event.event_type.in_(types),
                Event.timestamp >= since,
            )
            for user, kind, props, at in s.execute(stmt):
                seen.setdefault(user, []).append(({"event_type": kind, "properties": props}, at))
        return {
            enrolment_id
            for enrolment_id, (user, match) in wanted.items()
            if any(
                at >= enrolments[enrolment_id].enrolled_at and match.matches(event)
                for event, at in seen.get(user, [])
            )
        }
