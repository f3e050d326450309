"""RabbitMQ consumer: JSON events from a queue into :class:`recsys.ingest.EventIngestor`.

Each message holds one event (a JSON object) or a list of them. Messages are taken in batches
(up to ``batch_events`` events or until the queue has nothing more for ``batch_wait_s``),
their events go through ``EventIngestor.ingest`` in one call, and the messages are
acknowledged only after that call returned, i.e. after the commit. A crash before the ack
makes the broker redeliver the messages; nothing is lost.

Redelivery stores nothing twice: every event has an ``event_id`` (the store skips ids it has).
An event that carries none gets one derived from its message, stable across redeliveries:
``amqp-<first 40 hex of sha256(message_id)>-<index in the message>`` when the publisher set the
AMQP ``message_id`` property, else the same over the message body. Without a ``message_id``,
two separately published messages with byte-identical bodies are therefore one delivery: set
``message_id`` (or ``event_id``) when identical bodies can be distinct events.

Invalid events (and messages that are not JSON) go to the dead-letter queue ``<queue>.dead``,
declared durable by the consumer, one message per bad event: ``{"queue", "message_id",
"index", "event", "problems": [{"field", "problem"}]}``. They are published with publisher
confirms before the original message is acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import pika
import pika.exceptions
from sqlalchemy.exc import OperationalError

from recsys.errors import InvalidInputError, UnavailableError
from recsys.ingest import EventIngestor

logger = logging.getLogger(__name__)

DEAD_SUFFIX = ".dead"


def derived_event_id(message_id: str | None, body: bytes, index: int) -> str:
    """The ``event_id`` of the ``index``-th event of a message that gave it none."""
    key = message_id.encode("utf-8") if message_id else b"body:" + body
    return f"amqp-{hashlib.sha256(key).hexdigest()[:40]}-{index}"


@dataclass
class ConsumerStats:
    """Counts since the consumer started."""

    messages: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return {**asdict(self), "events_per_second": round(rate, 1)}


@dataclass
class _Message:
    tag: int
    message_id: str | None
    body: bytes


def _mask(url: str) -> str:
    head, sep, rest = url.partition("://")
    return f"{head}://***@{rest.rpartition('@')[2]}" if sep and "@" in rest else url


class RabbitConsumer:
    """Consume JSON events from ``queue`` at ``url`` into ``ingestor``.

    Parameters
    ----------
    url : str
        ``amqp://user:password@host:5672/vhost``.
    queue : str
        Declared durable if missing; invalid events go to ``queue + ".dead"``.
    ingestor : EventIngestor
        The one event path (validation, commit, subscribers).
    prefetch : int
        Unacknowledged messages the broker may hand over at once.
    batch_events : int
        Commit once this many events are waiting (or the queue paused for ``batch_wait_s``).
    """

    def __init__(
        self,
        url: str,
        queue: str,
        ingestor: EventIngestor,
        *,
        prefetch: int = 1000,
        batch_events: int = 1000,
        batch_wait_s: float = 0.05,
    ) -> None:
        if not queue.strip():
            raise InvalidInputError("--queue must be a non-empty name")
        self.url, self.queue, self.ingestor = url, queue, ingestor
        self.dead_queue = queue + DEAD_SUFFIX
        self.prefetch, self.batch_events, self.batch_wait_s = prefetch, batch_events, batch_wait_s
        self.stats = ConsumerStats()
        self._stopping = False

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it and return from :meth:`run`."""
        self._stopping = True

    def _connect(self):
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.url))
        except pika.exceptions.AMQPError as exc:
            raise UnavailableError(
                f"cannot connect to RabbitMQ at {_mask(self.url)}: {exc!r}"
            ) from None
        channel = connection.channel()
        channel.queue_declare(self.queue, durable=True)
        channel.queue_declare(self.dead_queue, durable=True)
        channel.basic_qos(prefetch_count=self.prefetch)
        channel.confirm_delivery()  # dead letters are on the broker before the ack
        return connection, channel

    def run(self, idle_exit_s: float | None = None) -> ConsumerStats:
        """Consume until :meth:`stop` (or until the queue was empty for ``idle_exit_s``).

        Raises
        ------
        UnavailableError
            RabbitMQ or the database cannot be reached; unacknowledged messages stay queued.
        """
        connection, channel = self._connect()
        start = last_message = time.monotonic()
        pending: list[_Message] = []
        waiting = 0
        try:
            stream = channel.consume(self.queue, inactivity_timeout=self.batch_wait_s)
            for method, properties, body in stream:
                if method is not None:
                    pending.append(_Message(method.delivery_tag, properties.message_id, body))
                    waiting += body.count(b"{") or 1  # cheap estimate of the events held
                    last_message = time.monotonic()
                    if waiting < self.batch_events:
                        continue
                if pending:
                    self._flush(channel, pending)
                    pending, waiting = [], 0
                    last_message = time.monotonic()  # idle counts from the last commit
                idle = time.monotonic() - last_message
                if self._stopping or (idle_exit_s is not None and idle >= idle_exit_s):
                    break
            channel.cancel()
        finally:
            self.stats.seconds = time.monotonic() - start
            if connection.is_open:
                connection.close()  # unacknowledged messages go back to the queue
        return self.stats

    def _flush(self, channel, messages: list[_Message]) -> None:
        records: list[Any] = []
        origin: list[tuple[_Message, int]] = []
        dead: list[dict] = []
        for message in messages:
            try:
                payload = json.loads(message.body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                text = message.body.decode("utf-8", "replace")
                problem = f"message is not JSON: {exc}"
                dead.append(self._dead(message, None, text, [{"field": None, "problem": problem}]))
                continue
            events = payload if isinstance(payload, list) else [payload]
            for index, event in enumerate(events):
                if isinstance(event, dict) and event.get("event_id") in (None, ""):
                    event = {**event, "event_id": derived_event_id(
                        message.message_id, message.body, index)}  # fmt: skip
                records.append(event)
                origin.append((message, index))
        if records:
            try:
                result = self.ingestor.ingest(records)
            except OperationalError as exc:
                raise UnavailableError(
                    f"the database is unavailable ({exc.orig}); the messages stay in the queue"
                ) from None
            for rejection in result.rejected:
                message, index = origin[rejection.index]
                problems = [{"field": rejection.field, "problem": rejection.problem}]
                dead.append(self._dead(message, index, records[rejection.index], problems))
            self.stats.stored += result.accepted - result.duplicates
            self.stats.duplicates += result.duplicates
        for letter in dead:
            channel.basic_publish(
                "", self.dead_queue, json.dumps(letter, default=str).encode("utf-8"),
                pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            )  # fmt: skip
        channel.basic_ack(messages[-1].tag, multiple=True)
        self.stats.messages += len(messages)
        self.stats.events += len(records)
        self.stats.dead_lettered += len(dead)
        logger.debug("committed %d events of %d messages", len(records), len(messages))

    def _dead(self, message: _Message, index: int | None, event: Any, problems: list) -> dict:
        return {"queue": self.queue, "message_id": message.message_id, "index": index,
                "event": event, "problems": problems}  # fmt: skip
