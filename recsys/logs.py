"""Log lines for every recsys process: the plain text format, or one JSON object per line.

``RECSYS_LOG_FORMAT=json`` (:class:`recsys.settings.CommonSettings` ``log_format``) makes each
line an object with ``time``, ``level``, ``logger``, ``message``, ``request_id`` (inside an HTTP
request of the service) and ``exc_info`` (the traceback as text), for a log shipper to read
without parsing text. The CLI, ``recsys serve`` and every Ray Serve replica call
:func:`configure_logging`; the service's request-id middleware sets :data:`request_id` for the
request's duration (a context variable, so it follows the request into worker threads).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id: ContextVar[str | None] = ContextVar("recsys_request_id", default=None)
"""The id of the HTTP request being handled in this context (None outside a request)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra fields passed with ``extra=`` are kept when they are
    JSON values."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid is not None:
            line["request_id"] = rid
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in line:
                line[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        # ensure_ascii: a message echoing client input can never break the line or the encoding
        return json.dumps(line, ensure_ascii=True)


class _RecsysHandler(logging.StreamHandler):
    """The handler :func:`configure_logging` installs (told apart so a second call replaces it).

    Without a stream of its own it writes to ``sys.stderr`` as it is at each record, not as it
    was at the call: whatever replaced stderr since (a test runner's capture, now closed) is
    never written to after the fact."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._follow_stderr = stream is None
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._follow_stderr else self._stream

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._stream = value


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format {log_format!r} is not one of {LOG_FORMATS}")


def configure_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Send the root logger's records at ``level`` and above to ``stream`` (stderr) in
    ``log_format``; calling again replaces the handler of the previous call (a Ray replica
    and the process that built it may both call it)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _RecsysHandler)]:
        root.removeHandler(handler)
    handler = _RecsysHandler(stream)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
