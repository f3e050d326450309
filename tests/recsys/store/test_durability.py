"""An acknowledged append survives SIGKILL of the writing process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from recsys.store import EventStore, read_session
from recsys.store.tables import Event

ROOT = Path(__file__).resolve().parents[3]
WRITER = """
import json, sys
from datetime import UTC, datetime, timedelta
from recsys.store import EventStore, init_schema, make_engine

url, connect_args = sys.argv[1], json.loads(sys.argv[2])
engine = make_engine(url, connect_args=connect_args)
init_schema(engine)
events = EventStore(engine)
t0 = datetime(2024, 1, 1, tzinfo=UTC)
for batch in range(100_000):
    records = [
        {"event_id": f"b{batch}-{i}", "user_id": f"u{i % 5}", "item_id": f"i{i}",
         "event_type": "view", "timestamp": t0 + timedelta(seconds=batch * 50 + i)}
        for i in range(50)
    ]
    result = events.append(records)
    print(f"ack {batch} {result.inserted}", flush=True)  # acknowledged only after commit
"""


def test_acknowledged_events_survive_kill_9(db):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db.url, json.dumps(db.connect_args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 5 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line.split()[1]))
        assert len(acked) >= 5, f"writer did not acknowledge: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)  # no clean shutdown, no checkpoint, no close
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    acked += [int(line.split()[1]) for line in proc.stdout.read().splitlines() if line]
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if db.backend == "sqlite":
        assert Path(f"{db.path}-wal").exists(), "SQLite should be in WAL mode"

    fresh = db.engine()
    with read_session(fresh) as session:
        stored = set(session.scalars(select(Event.event_id)))
    expected = {f"b{b}-{i}" for b in acked for i in range(50)}
    assert expected <= stored, f"lost {len(expected - stored)} acknowledged events"
    assert EventStore(fresh).count() >= 50 * len(acked)
