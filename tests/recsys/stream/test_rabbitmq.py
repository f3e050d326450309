"""The RabbitMQ consumer against the real broker (localhost:5672, guest/guest).

Skipped with the reason when no broker answers. Every test uses its own queues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from recsys.ingest import EventIngestor
from recsys.store import Store
from recsys.stream import RabbitConsumer, derived_event_id

pika = pytest.importorskip("pika")
URL = os.environ.get("RECSYS_TEST_RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")


@pytest.fixture
def channel():
    try:
        connection = pika.BlockingConnection(pika.URLParameters(URL))
    except pika.exceptions.AMQPError as exc:
        pytest.skip(f"RabbitMQ does not answer at {URL}: {exc!r}")
    yield connection.channel()
    connection.close()


@pytest.fixture
def queue(channel):
    name = f"recsys-test-{uuid.uuid4().hex[:10]}"
    for q in (name, name + ".dead"):
        channel.queue_declare(q, durable=True)
    yield name
    for q in (name, name + ".dead"):
        channel.queue_delete(q)


@pytest.fixture
def store(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


def publish(channel, queue, payload, message_id=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2,
                                                                message_id=message_id))  # fmt: skip


def drain(channel, queue) -> list[dict]:
    out = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(json.loads(body))


def event(user, item, **extra):
    return {"user_id": user, "item_id": item, "event_type": "view", **extra}


def test_valid_events_are_stored_and_invalid_ones_dead_lettered(channel, queue, store):
    publish(channel, queue, [event("u1", "i1", event_id="e1"), event("u1", "i2"),
                             {"user_id": "u2", "event_type": "fly"}])  # fmt: skip
    publish(channel, queue, event("u2", "i3", value=2.5, event_type="purchase"))
    publish(channel, queue, b"{not json")
    stats = RabbitConsumer(URL, queue, EventIngestor(store)).run(idle_exit_s=0.5)
    assert (stats.messages, stats.events, stats.stored, stats.dead_lettered) == (3, 4, 3, 2)
    assert store.events.count() == 3 and store.profiles.get("u2")["revenue"] == 2.5
    ids = {e["event_id"] for e in store.events.recent("u1")}
    assert "e1" in ids and any(i.startswith("amqp-") for i in ids)
    dead = sorted(drain(channel, queue + ".dead"), key=lambda d: d["index"] is None)
    assert dead[0]["index"] == 2 and dead[0]["event"]["event_type"] == "fly"
    assert dead[0]["problems"][0]["field"] == "event_type"
    assert "unknown event type 'fly'" in dead[0]["problems"][0]["problem"]
    assert dead[1]["index"] is None and "not JSON" in dead[1]["problems"][0]["problem"]
    assert channel.queue_declare(queue, passive=True).method.message_count == 0  # all acked


def test_redelivered_messages_store_nothing_twice(channel, queue, store):
    batch = [event("u1", f"i{n}") for n in range(3)]
    publish(channel, queue, batch, message_id="m-1")
    publish(channel, queue, batch, message_id="m-1")  # a redelivery
    publish(channel, queue, batch, message_id="m-2")  # another message, same content
    publish(channel, queue, event("u3", "i1"))
    publish(channel, queue, event("u3", "i1"))  # no message_id: the body identifies it
    stats = RabbitConsumer(URL, queue, EventIngestor(store)).run(idle_exit_s=0.5)
    assert stats.events == 11 and stats.stored == 7 and stats.duplicates == 4
    assert store.events.count() == 7
    assert derived_event_id("m-1", b"x", 2) == derived_event_id("m-1", b"y", 2)
    assert derived_event_id(None, b"x", 0) != derived_event_id(None, b"y", 0)


def test_kill_9_mid_stream_loses_and_doubles_nothing(channel, queue, tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    Store.open(url).close()
    messages, per_message = 400, 5
    for m in range(messages):
        events = [event(f"u{m % 17}", f"i{n}") for n in range(per_message)]
        for n, e in enumerate(events):
            if n % 2 == 0:
                e["event_id"] = f"m{m}-e{n}"  # half carry an id, half get a derived one
        publish(channel, queue, events, message_id=None if m % 3 else f"msg-{m}")
    total = messages * per_message
    command = [sys.executable, "-m", "recsys_cli.main", "consume", "--rabbitmq", URL,
               "--queue", queue, "--database-url", url, "--batch-events", "5",
               "--prefetch", "20"]  # fmt: skip
    store = Store.open(url)
    try:
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while store.events.count() < total // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        stored_at_kill = store.events.count()
        assert 0 < stored_at_kill < total, "the kill must land mid-stream"
        second = subprocess.run([*command, "--idle-exit", "1", "--json"], capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert store.events.count() == total
        with store.engine.connect() as conn:
            distinct = conn.exec_driver_sql("SELECT COUNT(DISTINCT event_id) FROM events").scalar()
        assert distinct == total
        profiles = [store.profiles.get(f"u{n}") for n in range(17)]
        assert sum(p["event_count"] for p in profiles) == total
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        store.close()
