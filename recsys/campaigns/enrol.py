"""Enrolment: put customers into a campaign (re-entry policy applied) with their first due step,
and the hashed A/B assignment."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from recsys.campaigns.definitions import Arm, Campaign, Split
from recsys.store.campaigns import DueStepRow, EnrolmentRow

CHUNK = 500


def assign_arm(campaign_id: str, user_id: str, split: Split, salt: str = "") -> Arm:
    """The arm of ``user_id``: a stable hash of (campaign, step, customer) against the weights."""
    digest = hashlib.sha256(f"{campaign_id}\0{salt}\0{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(arm.weight for arm in split.arms)
    running = 0.0
    for arm in split.arms:
        running += arm.weight / total
        if point < running:
            return arm
    return split.arms[-1]


def _latest(session: Session, campaign_id: str, users: list[str]) -> dict[str, tuple[bool, Any]]:
    """Per user: (has an active enrolment, time of the last enrolment)."""
    out: dict[str, tuple[bool, Any]] = {}
    for start in range(0, len(users), CHUNK):
        chunk = users[start : start + CHUNK]
        stmt = (
            select(EnrolmentRow.user_id, func.max(EnrolmentRow.enrolled_at))
            .where(EnrolmentRow.campaign_id == campaign_id, EnrolmentRow.user_id.in_(chunk))
            .group_by(EnrolmentRow.user_id)
        )
        for user, last in session.execute(stmt):
            out[user] = (False, last)
        active = select(EnrolmentRow.user_id).where(
            EnrolmentRow.campaign_id == campaign_id,
            EnrolmentRow.user_id.in_(chunk),
            EnrolmentRow.status == "active",
        )
        for user in session.scalars(active):
            out[user] = (True, out[user][1])
    return out


def enrol(
    session: Session,
    campaign_id: str,
    campaign: Campaign,
    users: Sequence[tuple[str, dict[str, Any] | None, datetime | None]],
    now: datetime,
) -> int:
    """Enrol ``(user_id, context, at)`` allowed by the re-entry policy; returns how many.

    ``at`` is when the trigger happened (an event's time; None: ``now``); the enrolment starts
    then and its first step is due then. Runs in the caller's transaction (with the consumer's
    cursor, so a trigger enrols exactly once).
    """
    wanted: dict[str, tuple[dict[str, Any] | None, datetime]] = {}
    for user_id, context, at in users:
        wanted.setdefault(user_id, (context, min(at or now, now)))  # first trigger wins
    if not wanted:
        return 0
    latest = _latest(session, campaign_id, sorted(wanted))
    policy = campaign.reentry
    rows, due = [], []
    for user_id, (context, at) in wanted.items():
        active, last = latest.get(user_id, (False, None))
        if active:
            continue
        if last is not None and policy.policy == "once":
            continue
        if last is not None and policy.policy == "after_days":
            if at - last < timedelta(days=policy.days or 0):
                continue
        enrolment_id = uuid.uuid4().hex
        rows.append(
            {"id": enrolment_id, "campaign_id": campaign_id, "user_id": user_id,
             "status": "active", "enrolled_at": at, "context": context}
        )  # fmt: skip
        due.append(
            {"enrolment_id": enrolment_id, "campaign_id": campaign_id, "user_id": user_id,
             "step_id": campaign.start, "due_at": at, "state": None}
        )  # fmt: skip
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(EnrolmentRow.__table__), rows[start : start + CHUNK])
        session.execute(insert(DueStepRow.__table__), due[start : start + CHUNK])
    return len(rows)


def finish(session: Session, enrolment_ids: Sequence[str], status: str, now: datetime) -> None:
    """End enrolments (``completed``, ``exited``, ``cancelled``) and drop their due steps."""
    ids = list(enrolment_ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        session.execute(
            update(EnrolmentRow)
            .where(EnrolmentRow.id.in_(chunk), EnrolmentRow.status == "active")
            .values(status=status, finished_at=now)
        )
        session.execute(DueStepRow.__table__.delete().where(DueStepRow.enrolment_id.in_(chunk)))
