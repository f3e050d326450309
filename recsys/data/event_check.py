"""The one event validator: every path that takes events in calls it.

``POST /v1/events`` (through :class:`recsys.ingest.EventIngestor`), the stream consumers and
``recsys import`` (through the same ingestor) and :meth:`recsys.store.EventStore.append` all check
events here, so an event is accepted or refused with the same words whichever way it arrives.
The rules are, in order:

1. the record is a JSON object whose fields are those of :data:`FIELDS` (unknown fields are
   refused, naming them, rather than dropped silently);
2. every text in it, keys and nested values included, can be stored by every backend
   (no NUL characters, no lone surrogates), nested values are plain JSON, and a datetime
   object carries a time zone (text without an offset is UTC, as in files);
3. the column rules of file loading (:mod:`recsys.data.coerce`, via
   :func:`recsys.data.records.validate_records`): types, required fields, event types, ranges;
4. the store's limits (id lengths).

File loaders apply rule 3 to whole columns at once (millions of rows); records go through all four.
pandas is imported only when events are validated, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from recsys.data.errors import DataValidationError
from recsys.data.schemas import EVENTS

if TYPE_CHECKING:
    from recsys.data.records import Rejection

FIELDS: tuple[str, ...] = ("event_id", *EVENTS.names)
"""Fields an event record may carry: the canonical ``EVENTS`` columns plus ``event_id``."""
ID_LENGTH = 255  # the store's id and session columns
EVENT_ID_LENGTH = 128
_FIELD_SET = frozenset(FIELDS)
_PLAIN_JSON = (str, int, float, bool, dict, list, type(None))
_NOT_AN_OBJECT = f"must be a JSON object with fields {', '.join(FIELDS)}"


class ValidEvents(list):
    """Store rows that passed :func:`validate_events`; ``EventStore.append`` does not check
    them again (nothing downstream re-parses what the edge validated)."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored by every backend (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid Unicode (lone surrogate at position {exc.start})"
    return None


def _shown(name: Any) -> str:
    return str(name).encode("utf-8", "backslashreplace").decode("utf-8")


def unstorable_field(record: dict[str, Any]) -> tuple[str, str] | None:
    """``(field, problem)`` for the first field holding text no backend can store or a value
    that is not plain JSON (keys and nested values included), or None. Used for every record
    the store takes: events here, items and customers in :mod:`recsys.store.checks`."""
    for name, value in record.items():
        if isinstance(value, str | int | float | bool | None) and isinstance(name, str):
            problem = text_problem(name) or (isinstance(value, str) and text_problem(value))
            if problem:
                return _shown(name), f"{_shown(name)} {problem}"
            continue  # the usual case: no walk
        stack = [name, value]  # iterative: no depth limit on nested properties
        while stack:
            current = stack.pop()
            if isinstance(current, dict | list):
                inner = (
                    [*current.keys(), *current.values()] if isinstance(current, dict) else current
                )
                odd = next((v for v in inner if not isinstance(v, _PLAIN_JSON)), None)
                if odd is not None:
                    return _shown(name), f"{_shown(name)} must be plain JSON, got {odd!r}"
                stack.extend(inner)
            elif isinstance(current, str) and (problem := text_problem(current)):
                return _shown(name), f"{_shown(name)} {problem}"
    return None


def _record_problem(record: Any) -> tuple[str | None, str] | None:
    """Rules 1 and 2: the first problem of the record as a whole, or None."""
    if not isinstance(record, dict):
        return None, _NOT_AN_OBJECT
    found = unstorable_field(record)
    if found:
        return found
    stamp = record.get("timestamp")
    if isinstance(stamp, datetime) and stamp.tzinfo is None:  # text without an offset is UTC
        return "timestamp", f"timestamp {stamp.isoformat()} has no time zone"
    unknown = [name for name in record if name not in _FIELD_SET]
    if unknown:
        names = ", ".join(repr(_shown(n)) for n in unknown)
        plural = "s" if len(unknown) > 1 else ""
        return _shown(unknown[0]), (
            f"unknown field{plural} {names}; an event has the fields {', '.join(FIELDS)} "
            "(put anything else under properties)"
        )
    return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _event_id(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Refused("event_id", f"event_id must be text or a whole number, got {value!r}")
    return str(value).strip()


class _Refused(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem


def _store_row(row: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Rule 4 on one canonical row; returns it as a row of the ``events`` table."""
    out = {
        "event_id": _event_id(record.get("event_id")),
        "user_id": row["user_id"],
        "item_id": row["item_id"] or None,
        "event_type": row["event_type"],
        "timestamp": row["timestamp"],
        "quantity": int(row["quantity"]),
        "value": None if math.isnan(row["value"]) else float(row["value"]),
        "session_id": row["session_id"] or None,
        "properties": json.loads(row["properties"]) or None,
    }
    for name in ("event_id", "user_id", "item_id", "session_id"):
        limit = EVENT_ID_LENGTH if name == "event_id" else ID_LENGTH
        if out[name] is not None and len(out[name]) > limit:
            raise _Refused(name, f"{name} is longer than {limit} characters")
    return out


def validate_events(
    records: Sequence[Any], *, now: datetime | None = None
) -> tuple[ValidEvents, list[Rejection]]:
    """Validate a batch of event records one by one (the column rules run batch-wise).

    Parameters
    ----------
    records : sequence
        The submitted records (JSON-like dicts; anything else is rejected), in order.
    now : datetime, optional
        The time of records without a timestamp; without it, a missing timestamp is rejected.

    Returns
    -------
    rows : ValidEvents
        The valid records as rows of the ``events`` table (timezone-aware UTC ``timestamp``,
        ``properties`` a dict or None), in submission order.
    rejections : list of Rejection
        One per invalid record (its 0-based index, the field at fault, the problem), in order.
    """
    from recsys.data.records import Rejection, validate_records

    rejections: list[Rejection] = []
    usable, positions = [], []
    for position, record in enumerate(records):
        found = _record_problem(record)
        if found is not None:
            rejections.append(Rejection(position, *found))
            continue
        if now is not None and _blank(record.get("timestamp")):
            record = {**record, "timestamp": now}
        usable.append(record)
        positions.append(position)
    frame, refused = validate_records(usable, EVENTS)
    rejections += [Rejection(positions[r.index], r.field, r.problem) for r in refused]
    columns = {name: frame[name].tolist() for name in EVENTS.names if name != "timestamp"}
    columns["timestamp"] = frame["timestamp"].dt.to_pydatetime().tolist()
    rows = ValidEvents()
    values = zip(*columns.values(), strict=True)
    for local, row in zip(
        frame.index, (dict(zip(columns, v, strict=True)) for v in values), strict=True
    ):
        try:
            rows.append(_store_row(row, usable[local]))
        except _Refused as exc:
            rejections.append(Rejection(positions[local], exc.field, exc.problem))
    rejections.sort(key=lambda r: r.index)
    return rows, rejections


def validate_event(
    record: Any, *, row: int = 1, source: str = "<record>", now: datetime | None = None
) -> dict[str, Any]:
    """Validate one event record and return it as a row of the ``events`` table.

    Parameters
    ----------
    record : dict
        The event (keys of :data:`FIELDS`; ids text or whole numbers, ``timestamp`` ISO-8601
        text, unix seconds or a datetime, ``properties`` an object or JSON text of one).
    row, source : int, str
        Where the record came from, for the error message (1-based row).
    now : datetime, optional
        The time of a record without a timestamp; without it, a missing timestamp is an error.

    Raises
    ------
    DataValidationError
        Naming ``source``, ``row`` and the field at fault; the same words as
        :func:`validate_events` and the file loaders use.
    """
    rows, rejections = validate_events([record], now=now)
    if rejections:
        first = rejections[0]
        raise DataValidationError(source, first.problem, row=row, column=first.field)
    return rows[0]
