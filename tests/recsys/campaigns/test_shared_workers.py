"""Campaign workers sharing sends: two worker processes on PostgreSQL, SIGKILL one mid-run:
the other finishes and every customer gets the e-mail exactly once, counted at a real SMTP
server (aiosmtpd) and in the sends table (the scenario is benchmarks/shared_workers.py). Plus the
delivery lease on both backends: take-over of a dead worker's sends and fencing of a hung one.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from benchmarks.shared_workers import CAMPAIGN, run
from recsys.campaigns.channels import SmtpChannel
from recsys.campaigns.delivery import PRESUMED
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.store import read_session, write_session
from recsys.store.campaigns import SendRow
from tests.recsys.campaigns.test_smtp_end_to_end import Inbox
from tests.recsys.store.conftest import _postgres_schema

CUSTOMERS = 10_000
LEASE_S = 0.3


@pytest.mark.slow
def test_kill9_of_one_of_two_workers_sends_every_message_once(tmp_path):
    with _postgres_schema() as database:  # skips with the reason when PostgreSQL is unreachable
        result = run(database.url, database.connect_args["options"], CUSTOMERS,
                     kill_at=CUSTOMERS * 3 // 10, lease_s=3.0, batch_size=500,
                     timeout_s=240.0, log_dir=tmp_path)  # fmt: skip
    print(result)
    # Both workers delivered before the kill, which came mid-run.
    assert min(result["killed_at_by_worker"].get(w, 0) for w in ("a", "b")) > 0
    assert CUSTOMERS * 3 // 10 <= result["killed_at"] < CUSTOMERS
    # One send row per customer-step, every one of them sent; nothing else.
    assert result["send_rows"] == result["send_keys"] == CUSTOMERS
    assert result["statuses"] == {"sent": CUSTOMERS}
    # The server got each message once and nothing it should not have.
    assert result["duplicates"] == 0 and result["duplicate_recipients"] == 0
    assert result["unexpected"] == 0
    # The killed worker can leave one message handed over with no outcome recorded: it is
    # presumed delivered (never repeated). Only when the kill fell between recording that
    # hand-over and the DATA reaching the server is it missing; then it is that one.
    assert result["presumed_delivered"] <= 1
    assert result["missing"] <= result["presumed_delivered"]
    assert result["received"] == CUSTOMERS - result["missing"]
    # The survivor finished the run: it delivered after the kill.
    assert result["delivered_by_worker"]["b"] > result["killed_at_by_worker"]["b"]


def _worker(store, port: int) -> CampaignWorker:
    settings = campaign_settings(campaign_secret="s" * 32, smtp_host="127.0.0.1", smtp_port=port,
                                 frequency_cap=100, delivery_lease_s=LEASE_S)  # fmt: skip
    return CampaignWorker(store, {}, settings, {"email": SmtpChannel(settings)}, lag_s=0)


def _statuses(store) -> Counter:
    with read_session(store.engine) as s:
        return Counter(s.scalars(select(SendRow.status)))


class _TakenOverInbox(Inbox):
    """Worker A's SMTP server: while A's first message is on the wire, A's lease runs out and
    worker B runs a pass (as if A had hung)."""

    def __init__(self, other_worker) -> None:
        super().__init__()
        self.other_worker = other_worker
        self.other_counts: dict | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.other_counts is None:
            await asyncio.sleep(LEASE_S * 1.5)
            self.other_counts = await asyncio.to_thread(self.other_worker.run_once)
        return await super().handle_DATA(server, session, envelope)


def _controller(handler) -> Controller:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def test_a_worker_that_lost_its_lease_hands_nothing_over_again(store):
    """Lease take-over and fencing, in one process on both backends: B takes over A's claimed
    sends while A is stuck in its first SMTP transaction; A then sends none of them, and its
    first message (presumed delivered by B, never repeated) gets A's own outcome."""
    service = CampaignService(store)
    service.put_template({"id": "hello", "subject": "hi", "text": "hi"})
    service.create(CAMPAIGN, "c", status="active")
    users = [f"u{i}" for i in range(5)]
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    inbox_b = Inbox()
    controller_b = _controller(inbox_b)
    worker_b = _worker(store, controller_b.port)
    inbox_a = _TakenOverInbox(worker_b)
    controller_a = _controller(inbox_a)
    try:
        worker_a = _worker(store, controller_a.port)
        service.trigger("c", users)
        counts_a = worker_a.run_once()
    finally:
        controller_a.stop()
        controller_b.stop()
    assert counts_a["delivered"] == 1 and inbox_b.messages and inbox_a.other_counts
    assert inbox_a.other_counts["delivered"] == 4 == len(inbox_b.messages)
    received = Counter(str(m["Message-ID"]) for m in inbox_a.messages + inbox_b.messages)
    assert len(received) == 5 and max(received.values()) == 1
    with read_session(store.engine) as s:
        rows = list(s.execute(select(SendRow.status, SendRow.reason, SendRow.attempts)))
    assert sorted(rows) == [("sent", None, 1)] * 5  # A's outcome replaced the presumption


def test_a_dead_workers_sends_are_taken_over_or_presumed(store):
    """What a killed worker leaves: claimed but never handed over -> sent by the next pass;
    handed over with no outcome -> presumed delivered, not sent again."""
    service = CampaignService(store)
    service.put_template({"id": "hello", "subject": "hi", "text": "hi"})
    service.create(CAMPAIGN, "c", status="active")
    for user in ("u0", "u1"):
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    inbox = Inbox()
    controller = _controller(inbox)
    try:
        worker = _worker(store, controller.port)
        service.trigger("c", ["u0", "u1"])
        worker.reload()
        worker.runner.run()  # the step ran: two pending sends, as a worker killed now leaves
        expired = datetime.now(UTC) - timedelta(seconds=1)
        with write_session(store.engine) as s:
            for n, send in enumerate(s.scalars(select(SendRow).order_by(SendRow.user_id))):
                send.status, send.next_attempt_at, send.attempts = "sending", expired, n
        worker.run_once()
    finally:
        controller.stop()
    assert [m["To"] for m in inbox.messages] == ["u0@example.com"]
    with read_session(store.engine) as s:
        rows = dict(s.execute(select(SendRow.user_id, SendRow.reason)).all())
    assert rows == {"u0": None, "u1": PRESUMED}
    assert _statuses(store) == {"sent": 2}
