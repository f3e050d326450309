"""Two campaign workers share one campaign on PostgreSQL; one is killed with SIGKILL mid-run.

Writes N customers (e-mail + consent) into a schema of its own, enrols them in an API-triggered
campaign whose one step sends an e-mail, starts a real SMTP server (aiosmtpd, two listeners of
one inbox so each worker's deliveries can be told apart) and two worker processes running the
library's loop (``CampaignWorker.run_forever`` with the SMTP channel; ``recsys worker`` is the
same loop plus a served model, which this campaign does not use). When ``--kill-at`` messages
have arrived and both workers have delivered some, the first worker gets SIGKILL; the other
takes over its sends once their lease (``--lease-s``) expires and finishes the run.

Prints JSON: customers, workers, killed_at (messages received by then, per worker), total time,
messages/s, duplicates (repeated Message-IDs at the server), missing (send keys the server never
got), the sends table's statuses, and how many e-mails were presumed delivered (handed to the
server by the killed worker, outcome unrecorded; see :mod:`recsys.campaigns.delivery`).

    .venv/bin/python benchmarks/shared_workers.py --customers 10000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from recsys.campaigns.delivery import PRESUMED
from recsys.campaigns.service import CampaignService
from recsys.store import Store, make_engine, read_session, write_session
from recsys.store.campaigns import DueStepRow, SendRow
from recsys.store.customers import write_customers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CAMPAIGN = {
    "name": "Shared workers",
    "trigger": {"type": "api"},
    "start": "mail",
    "steps": {"mail": {"type": "send", "channel": "email", "template": "hello"}},
}
TEMPLATE = {"id": "hello", "subject": "Hello {{ customer.user_id }}", "text": "Hello."}
WORKER = """
import signal, sys, threading
from recsys.campaigns.channels import SmtpChannel
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.worker import CampaignWorker
from recsys.store import Store
url, options, port, lease, batch = sys.argv[1:6]
store = Store.open(url, connect_args={"options": options})
settings = campaign_settings(campaign_secret="s" * 32, smtp_host="127.0.0.1", smtp_port=int(port),
                             frequency_cap=100, delivery_lease_s=float(lease))
worker = CampaignWorker(store, {}, settings, {"email": SmtpChannel(settings)},
                        batch_size=int(batch), lag_s=0)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
worker.run_forever(stop, poll_s=0.1)
"""


class Inbox:
    """The SMTP server's side: every message received, with the listener that took it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []  # (listener, Message-ID, To)
        self.lock = threading.Lock()
        self.parser = BytesHeaderParser()

    def handler(self, listener: str):
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's)
                headers = inbox.parser.parsebytes(envelope.content)
                with inbox.lock:
                    inbox.received.append((listener, headers["Message-ID"], headers["To"]))
                return "250 OK"

        return Handler()

    def by_listener(self) -> Counter:
        with self.lock:
            return Counter(listener for listener, _, _ in self.received)


def _free_port() -> int:
    with socket.socket() as probe:  # the controller's own check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _count(engine, *where) -> int:
    with read_session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(SendRow).where(*where)) or 0)


def _prepare(store: Store, customers: int) -> list[str]:
    service = CampaignService(store)
    service.put_template(TEMPLATE)
    service.create(CAMPAIGN, "shared", status="active")
    users = [f"c{i:07d}" for i in range(customers)]
    with write_session(store.engine) as s:
        rows = [{"user_id": u, "email": f"{u}@example.com", "country": None, "time_zone": None,
                 "consents": {"email": True}, "attributes": None} for u in users]  # fmt: skip
        write_customers(s, rows, ["email", "consents"])
    enrolled = service.trigger("shared", users)["enrolled"]
    if enrolled != customers:
        raise RuntimeError(f"enrolled {enrolled} of {customers} customers")
    return users


def run(url: str, options: str, customers: int, kill_at: int, lease_s: float = 5.0,
        batch_size: int = 500, timeout_s: float = 300.0, log_dir: Path | None = None
        ) -> dict:  # fmt: skip
    """The scenario on an initialised, empty database (``options``: libpq options, e.g. the
    search_path of a test schema); returns the figures printed by the benchmark."""
    store = Store.open(url, connect_args={"options": options} if options else None)
    inbox = Inbox()
    controllers, workers, logs = [], [], []
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="shared-workers-"))
    try:
        _prepare(store, customers)
        for name in ("a", "b"):
            port = _free_port()
            controller = Controller(inbox.handler(name), hostname="127.0.0.1", port=port)
            controller.start()
            controllers.append(controller)
            log = open(log_dir / f"worker-{name}.log", "wb")  # noqa: SIM115 (closed below)
            logs.append(log)
            args = [url, options, str(port), str(lease_s), str(batch_size)]
            workers.append(
                subprocess.Popen([sys.executable, "-c", WORKER, *args], cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            )  # fmt: skip
        start = time.monotonic()
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            per = inbox.by_listener()
            if sum(per.values()) >= kill_at and per["a"] and per["b"]:
                break
            if any(w.poll() is not None for w in workers):
                raise RuntimeError(f"a worker exited early; see {log_dir}")
            time.sleep(0.005)
        else:
            raise TimeoutError(f"{kill_at} messages not received in {timeout_s} s")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = inbox.by_listener()
        killed_after = time.monotonic() - start
        while time.monotonic() < deadline:
            with read_session(store.engine) as s:
                due = s.scalar(select(func.count()).select_from(DueStepRow))
            if not due and not _count(store.engine, SendRow.status.in_(("pending", "sending"))):
                break
            if workers[1].poll() is not None:
                raise RuntimeError(f"the surviving worker exited; see {log_dir}")
            time.sleep(0.05)
        else:
            raise TimeoutError(f"the run did not finish in {timeout_s} s; see {log_dir}")
        elapsed = time.monotonic() - start
        with read_session(store.engine) as s:
            sends = list(s.execute(select(SendRow.key, SendRow.status, SendRow.reason)))
        with inbox.lock:
            received = Counter(message_id for _, message_id, _ in inbox.received)
            recipients = Counter(to for _, _, to in inbox.received)
            per_listener = Counter(listener for listener, _, _ in inbox.received)
        expected = {f"<{key.replace(':', '.')}@recsys>" for key, _, _ in sends}
        return {
            "customers": customers,
            "workers": 2,
            "batch_size": batch_size,
            "lease_s": lease_s,
            "killed_at": sum(killed_at.values()),
            "killed_at_by_worker": dict(sorted(killed_at.items())),
            "killed_after_s": round(killed_after, 2),
            "delivered_by_worker": dict(sorted(per_listener.items())),
            "total_s": round(elapsed, 2),
            "messages_per_s": round(sum(received.values()) / elapsed, 1),
            "received": sum(received.values()),
            "duplicates": sum(received.values()) - len(received),
            "duplicate_recipients": sum(n - 1 for n in recipients.values() if n > 1),
            "missing": len(expected - set(received)),
            "unexpected": len(set(received) - expected),
            "send_rows": len(sends),
            "send_keys": len({key for key, _, _ in sends}),
            "statuses": dict(Counter(status for _, status, _ in sends)),
            "presumed_delivered": sum(reason == PRESUMED for _, _, reason in sends),
        }
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        for log in logs:
            log.close()
        for controller in controllers:
            controller.stop()
        store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--kill-at", type=int, default=None, help="default: 30%% of customers")
    parser.add_argument("--lease-s", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=os.environ.get("RECSYS_TEST_POSTGRES_URL",
                                                                 DEFAULT_URL))  # fmt: skip
    args = parser.parse_args()
    admin = make_engine(args.database_url, isolation_level="AUTOCOMMIT")
    schema = f"recsys_bench_shared_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        result = run(args.database_url, f"-csearch_path={schema}", args.customers,
                     args.kill_at or args.customers * 3 // 10, args.lease_s,
                     args.batch_size)  # fmt: skip
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
