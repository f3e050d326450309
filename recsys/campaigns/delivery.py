"""Delivery of recorded sends: claim pending sends, call their channel, record the outcome.

A send is committed as ``pending`` (with its rendered message) in the transaction that ran its
step. Delivery claims pending sends (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and marks them
``sending`` with a lease before calling the channel, and ``sent`` after. A worker killed during
the call leaves ``sending`` behind: when the lease has expired, an e-mail is marked failed
("interrupted") and never sent again, a webhook goes back to ``pending`` (its receiver drops the
repeat by ``Idempotency-Key``). Failed webhooks are retried with back-off and dead-lettered after
the last attempt.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update

from recsys.campaigns.channels import Channel
from recsys.store.campaigns import DeadLetterRow, MessageRow, SendRow
from recsys.store.db import is_postgres, write_session

logger = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)
BACKOFF_S, BACKOFF_MAX_S = 30.0, 3600.0
RETRIED = ("webhook", "sms", "push")


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` (30 s, 60 s, 120 s ... at most an hour)."""
    return timedelta(seconds=min(BACKOFF_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


class Deliverer:
    """Delivers pending sends over ``channels`` (by channel name)."""

    def __init__(self, engine: Engine, channels: dict[str, Channel], clock: Callable[[], datetime],
                 max_attempts: int = 5) -> None:  # fmt: skip
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.max_attempts = max_attempts

    def recover(self) -> int:
        """Settle sends whose worker died during the channel call (lease expired)."""
        now = self.clock()
        expired = [SendRow.status == "sending", SendRow.next_attempt_at < now]
        with write_session(self.engine) as s:
            mails = s.execute(
                update(SendRow)
                .where(*expired, SendRow.channel.not_in(RETRIED))
                .values(status="failed", reason="interrupted during delivery; not retried")
            ).rowcount
            hooks = s.execute(
                update(SendRow)
                .where(*expired, SendRow.channel.in_(RETRIED))
                .values(status="pending", next_attempt_at=now)
            ).rowcount
        if mails or hooks:
            logger.warning("recovered %d interrupted e-mail and %d webhook sends", mails, hooks)
        return mails + hooks

    def run(self, limit: int = 500) -> dict[str, int]:
        """Deliver up to ``limit`` due pending sends; counts of sent, retried, failed, dead."""
        now = self.clock()
        counts = {"sent": 0, "retried": 0, "failed": 0, "dead": 0}
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
                send.status, send.attempts = "sending", send.attempts + 1
                send.next_attempt_at = now + LEASE
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
            errors = self.channels[channel].deliver(messages)
            self._record(messages, errors, counts)
        return counts

    def _record(self, messages: list[dict], errors: list[str | None], counts: dict) -> None:
        now = self.clock()
        with write_session(self.engine) as s:
            for message, error in zip(messages, errors, strict=True):
                send = s.get(SendRow, message["id"])
                if error is None:
                    send.status, send.sent_at, send.reason = "sent", now, None
                    counts["sent"] += 1
                elif message["channel"] not in RETRIED:
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
