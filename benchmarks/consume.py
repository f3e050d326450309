"""Sustained events/s of the RabbitMQ consumer (`recsys consume`) into a fresh store.

Publishes N events (M per message, half without event_id) to a fresh queue on the broker,
then runs the consumer in-process until the queue is drained and prints one JSON line: events,
seconds (from the first delivery until the last commit, the idle wait excluded), events/s.

    python benchmarks/consume.py                         # 100k events, 100 per message, SQLite
    python benchmarks/consume.py --events 200000 --per-message 50 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta

import pika

from recsys.ingest import EventIngestor
from recsys.store import Store
from recsys.stream import RabbitConsumer

IDLE_EXIT_S = 1.0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--batch-events", type=int, default=2000)
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@localhost:5672/%2F")
    parser.add_argument("--database-url", default=None, help="Default: a temporary SQLite file.")
    return parser.parse_args()


def _publish(url: str, queue: str, events: int, per_message: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, events, per_message):
        batch = []
        for n in range(first, min(first + per_message, events)):
            event = {"user_id": f"u{n % 5000}", "item_id": f"i{n % 997}", "event_type": "view",
                     "timestamp": (t0 + timedelta(seconds=n)).isoformat()}  # fmt: skip
            if n % 2:
                event["event_id"] = f"bench-{n}"
            batch.append(event)
        channel.basic_publish("", queue, json.dumps(batch).encode(),
                              pika.BasicProperties(delivery_mode=2))  # fmt: skip
    connection.close()


def main() -> None:
    """Publish, consume, print the measurement as one JSON line."""
    args = _parse()
    queue = f"recsys-bench-{uuid.uuid4().hex[:8]}"
    _publish(args.rabbitmq, queue, args.events, args.per_message)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(args.database_url or f"sqlite:///{tmp}/consume.db")
        consumer = RabbitConsumer(args.rabbitmq, queue, EventIngestor(store),
                                  batch_events=args.batch_events)  # fmt: skip
        try:
            stats = consumer.run(idle_exit_s=IDLE_EXIT_S)
            stored = store.events.count()
        finally:
            store.close()
    connection = pika.BlockingConnection(pika.URLParameters(args.rabbitmq))
    for name in (queue, queue + ".dead"):
        connection.channel().queue_delete(name)
    connection.close()
    seconds = max(stats.seconds - IDLE_EXIT_S, 1e-9)
    print(json.dumps({"events": stats.events, "stored": stored, "messages": stats.messages,
                      "per_message": args.per_message, "seconds": round(seconds, 2),
                      "events_per_second": round(stats.events / seconds)}))  # fmt: skip


if __name__ == "__main__":
    main()
