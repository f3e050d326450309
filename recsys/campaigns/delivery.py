"""Delivery of recorded sends: claim pending sends, call their channel, record the outcome.

A send is committed as ``pending`` (with its rendered message) in the transaction that ran its
step. Delivery claims pending sends (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers
share them) and marks them ``sending`` under a lease: a wall-clock deadline, renewed while the
worker works through the batch, whose value also fences the claim (a worker that lost its lease
cannot hand a message over any more). Then, message by message, one small transaction records
the outcomes so far and counts an attempt on the next message right before the channel lets it
go (for e-mail: between the accepted envelope and DATA), so at any moment at most one message of
a worker is handed over without a recorded outcome.

A worker killed mid-batch leaves ``sending`` rows behind; every worker's pass takes over those
whose lease expired. Never handed over (no attempt counted): back to ``pending``, sent by the
survivor. Handed over, outcome unknown: an e-mail is recorded ``sent`` with a reason saying it
is presumed delivered and is never sent again (the server may have it; SMTP offers no way to
ask, and the worker died after the server accepted the envelope, at the latest point before the
data), a webhook goes back to ``pending`` (its receiver drops the repeat by
``Idempotency-Key``). Failed webhooks are retried with back-off and dead-lettered after the
last attempt.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, or_, select, text, update

from recsys.campaigns.channels import SKIPPED, Channel, Progress
from recsys.store.campaigns import DeadLetterRow, MessageRow, SendRow
from recsys.store.db import is_postgres, write_session

logger = logging.getLogger(__name__)
LEASE_S = 30.0
PRESUMED = "presumed delivered: its worker died after handing it to the channel; not repeated"
BACKOFF_S, BACKOFF_MAX_S = 30.0, 3600.0
RETRIED = ("webhook", "sms", "push")
SENDS = SendRow.__table__  # plain UPDATEs, without the ORM's bookkeeping, on the per-message path


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` (30 s, 60 s, 120 s ... at most an hour)."""
    return timedelta(seconds=min(BACKOFF_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


class Deliverer:
    """Delivers pending sends over ``channels`` (by channel name)."""

    def __init__(self, engine: Engine, channels: dict[str, Channel], clock: Callable[[], datetime],
                 max_attempts: int = 5, lease_s: float = LEASE_S) -> None:  # fmt: skip
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease_s)

    def recover(self) -> int:
        """Take over the sends of workers whose lease expired (see the module doc)."""
        now, wall = self.clock(), _wall()
        expired = [SendRow.status == "sending", SendRow.next_attempt_at < wall]
        handed = [SendRow.channel.not_in(RETRIED), SendRow.attempts > 0]
        with write_session(self.engine) as s:
            presumed = s.execute(
                update(SendRow)
                .where(*expired, *handed)
                .values(status="sent", sent_at=now, reason=PRESUMED, next_attempt_at=None)
            ).rowcount
            resumed = s.execute(
                update(SendRow).where(*expired).values(status="pending", next_attempt_at=now)
            ).rowcount
        if presumed or resumed:
            logger.warning("took over expired sends: %d back to pending, %d e-mails presumed "
                           "delivered", resumed, presumed)  # fmt: skip
        return presumed + resumed

    def run(self, limit: int = 500) -> dict[str, int]:
        """Deliver up to ``limit`` due pending sends; counts of sent, retried, failed, dead and
        skipped (taken over by another worker while this one held them too long)."""
        now = self.clock()
        counts = {"sent": 0, "retried": 0, "failed": 0, "dead": 0, "skipped": 0}
        lease = _Lease(self, _wall() + self.lease)
        with write_session(self.engine) as s:
            stmt = (
                select(SendRow, MessageRow)
                .join(MessageRow, MessageRow.send_id == SendRow.id)
                .where(
                    SendRow.status == "pending",
                    SendRow.channel.in_(list(self.channels)),
                    or_(SendRow.next_attempt_at.is_(None), SendRow.next_attempt_at <= now),
                )
                .order_by(SendRow.id)
                .limit(limit)
            )
            if is_postgres(s):
                stmt = stmt.with_for_update(skip_locked=True, of=SendRow)
            claimed = list(s.execute(stmt))
            for send, _ in claimed:
                send.status, send.next_attempt_at = "sending", lease.until
                lease.ids.append(send.id)
            batches: dict[str, list[dict]] = defaultdict(list)
            for send, message in claimed:
                batches[send.channel].append(
                    {"id": send.id, "key": send.key, "attempts": send.attempts,
                     "campaign_id": send.campaign_id, "user_id": send.user_id,
                     "channel": send.channel, "items": send.items or [],
                     "recipient": message.recipient, "subject": message.subject,
                     "text": message.text, "html": message.html, "url": message.url}
                )  # fmt: skip
        for channel, messages in batches.items():
            progress = _Recorder(lease, messages, counts)
            errors = self.channels[channel].deliver(messages, progress)
            counts["skipped"] += errors.count(SKIPPED)
            for index, error in enumerate(errors):  # e.g. all failed at connect: none left
                if error != SKIPPED and index not in progress.reported:
                    progress.done(index, error)
            with write_session(self.engine) as s:
                progress.flush(s)
        return counts

    def _record(self, s, outcomes: list[tuple[dict, str | None]], counts: dict) -> None:
        """Write the channel's outcomes (the worker that handed a message over knows best)."""
        now = self.clock()
        sent = [message["id"] for message, error in outcomes if error is None]
        if sent:  # the common case, one statement (called once per message)
            s.execute(update(SENDS).where(SENDS.c.id.in_(sent))
                      .values(status="sent", sent_at=now, reason=None))  # fmt: skip
            counts["sent"] += len(sent)
        for message, error in outcomes:
            if error is None:
                continue
            send = s.get(SendRow, message["id"])
            if message["channel"] not in RETRIED:
                send.status, send.reason = "failed", error
                counts["failed"] += 1
            elif send.attempts >= self.max_attempts:
                send.status, send.reason = "dead", error
                s.add(
                    DeadLetterRow(send_id=send.id, campaign_id=send.campaign_id,
                                  user_id=send.user_id, url=message["url"] or "",
                                  error=error, attempts=send.attempts, at=now)
                )  # fmt: skip
                counts["dead"] += 1
            else:
                send.status, send.reason = "pending", error
                send.next_attempt_at = now + backoff(send.attempts)
                counts["retried"] += 1


def _wall() -> datetime:
    # Leases are about worker processes being alive: real time, not the campaign clock.
    return datetime.now(UTC)


class _Lease:
    """One delivery batch's claim: its deadline (also its fencing value) and its sends."""

    def __init__(self, deliverer: Deliverer, until: datetime) -> None:
        self.deliverer = deliverer
        self.until = until
        self.renewed = _wall()
        self.ids: list[int] = []

    def renew_if_due(self, s) -> None:
        """Push the deadline on when a third of the lease has passed (a live worker keeps it)."""
        lease = self.deliverer.lease
        if _wall() - self.renewed < lease / 3:
            return
        until = _wall() + lease
        s.execute(
            update(SENDS)
            .where(SENDS.c.id.in_(self.ids), SENDS.c.status == "sending",
                   SENDS.c.next_attempt_at == self.until)
            .values(next_attempt_at=until)
        )  # fmt: skip
        self.until, self.renewed = until, _wall()


class _Recorder(Progress):
    """Records a channel's progress: each handover commits the outcomes reported since the last
    one and counts the attempt of the message about to leave (fenced by the lease)."""

    def __init__(self, lease: _Lease, messages: list[dict], counts: dict) -> None:
        self.lease = lease
        self.messages = messages
        self.counts = counts
        self.outcomes: list[tuple[dict, str | None]] = []
        self.reported: set[int] = set()

    def flush(self, s) -> None:
        if self.outcomes:
            self.lease.deliverer._record(s, self.outcomes, self.counts)
            self.outcomes = []

    def handover(self, index: int) -> bool:
        with write_session(self.lease.deliverer.engine) as s:
            if is_postgres(s):
                # Not waiting for the WAL flush keeps the gap between this commit and the data
                # leaving short; a database crash (not a worker's) could lose the count.
                s.execute(text("SET LOCAL synchronous_commit TO OFF"))
            self.flush(s)
            self.lease.renew_if_due(s)
            stmt = (
                update(SENDS)
                .where(SENDS.c.id == self.messages[index]["id"], SENDS.c.status == "sending",
                       SENDS.c.next_attempt_at == self.lease.until)
                .values(attempts=SENDS.c.attempts + 1)
            )  # fmt: skip
            return s.execute(stmt).rowcount == 1

    def done(self, index: int, error: str | None) -> None:
        self.reported.add(index)
        self.outcomes.append((self.messages[index], error))
