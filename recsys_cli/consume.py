"""`recsys consume --rabbitmq URL --queue NAME`: events from RabbitMQ into the store."""

from __future__ import annotations

import json
import signal
import threading

import typer

from recsys.ingest import EventIngestor
from recsys.settings import get_settings
from recsys.store import Store
from recsys.stream import RabbitConsumer


def consume(
    queue: str = typer.Option(..., "--queue", help="Queue to read; bad events go to NAME.dead."),
    rabbitmq: str = typer.Option(
        "amqp://guest:guest@localhost:5672/%2F", "--rabbitmq", help="RabbitMQ URL."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Store to write to (default: RECSYS_DATABASE_URL)."
    ),
    prefetch: int = typer.Option(1000, "--prefetch", min=1, help="Unacknowledged messages."),
    batch_events: int = typer.Option(
        1000, "--batch-events", min=1, help="Commit once this many events are waiting."
    ),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", min=0, help="Stop after the queue was empty this many seconds."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final counts as JSON."),
) -> None:
    """Read JSON events (one object or a list per message) and feed the one ingestion path.
    A message is acknowledged only after its events are committed; a redelivered message
    stores nothing twice (event_id, or one derived from the message). SIGTERM or Ctrl-C
    finishes the batch in hand and stops."""
    store = Store.open(database_url or get_settings().database_url)
    consumer = RabbitConsumer(
        rabbitmq, queue, EventIngestor(store), prefetch=prefetch, batch_events=batch_events
    )
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: consumer.stop())
    try:
        stats = consumer.run(idle_exit_s=idle_exit)
    finally:
        store.close()
    summary = stats.as_dict()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(
            f"consumed {summary['messages']:,} messages, {summary['events']:,} events "
            f"({summary['stored']:,} stored, {summary['duplicates']:,} duplicates, "
            f"{summary['dead_lettered']:,} dead-lettered) in {summary['seconds']:.1f} s "
            f"({summary['events_per_second']:,.0f} events/s)"
        )
