"""POST /v1/events: validate each event, commit the valid ones, answer after the commit."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, status

from recsys.data.errors import DataValidationError
from recsys.data.records import validate_records
from recsys.store import check_event
from serving.deps import IngestKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, EventsIn, EventsOut, Rejection, clean_text, problem

router = APIRouter(prefix="/v1", tags=["events"], responses=V1_ERRORS)


def _with_defaults(events: list[dict], now: str) -> list[dict]:
    """A missing timestamp means 'now' (the shop sends events as they happen)."""
    return [
        event if event.get("timestamp") not in (None, "") else {**event, "timestamp": now}
        for event in events
    ]


def _text_problem(record: dict) -> tuple[str, str] | None:
    """Lone surrogates (JSON ``\\ud800`` escapes) anywhere in an event, keys and nested values
    included, would fail the whole batch at insert; find them up front (iteratively: no depth
    limit)."""
    for name, value in record.items():
        stack = [name, value]
        while stack:
            current = stack.pop()
            if isinstance(current, dict):
                stack.extend(current.keys())
                stack.extend(current.values())
            elif isinstance(current, list):
                stack.extend(current)
            elif isinstance(current, str):
                try:
                    clean_text(current.replace("\x00", ""))  # the store names NUL itself
                except ValueError as exc:
                    name = str(name).encode("utf-8", "backslashreplace").decode("utf-8")
                    return name, f"{name} {exc}"
    return None


@router.post(
    "/events",
    response_model=EventsOut,
    summary="Ingest up to 1000 events",
    responses={**BAD_BODY, 413: problem("Too many events or body too large")},
)
def ingest_events(body: EventsIn, state: StateDep, key: IngestKey) -> EventsOut:
    """Store shop events. Each event is checked on its own: invalid events are listed in
    ``rejected`` with the field and the problem, the valid ones are committed before this answer
    is sent (an acknowledged event survives a crash). Re-sending an event with the same
    ``event_id`` is acknowledged again but stored once."""
    limit = state.settings.max_events_per_request
    if len(body.events) > limit:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"at most {limit} events per request, got {len(body.events)}",
        )
    records = _with_defaults(body.events, datetime.now(UTC).isoformat())
    rejected, usable = [], []
    for position, record in enumerate(records):
        if (text_problem := _text_problem(record)) is None:
            usable.append(position)
        else:
            rejected.append(
                Rejection(index=position, field=text_problem[0], problem=text_problem[1])
            )
    frame, rejections = validate_records([records[position] for position in usable])
    rejected += [Rejection(**{**r.as_dict(), "index": usable[r.index]}) for r in rejections]
    rows = []
    for local, row in zip(frame.index, frame.to_dict("records"), strict=True):
        position = usable[local]
        row["event_id"] = records[position].get("event_id")
        if row["event_id"] is not None and not isinstance(row["event_id"], str):
            row["event_id"] = str(row["event_id"])
        row["item_id"] = row["item_id"] or None
        row["session_id"] = row["session_id"] or None
        try:
            rows.append(check_event(row, row=position))
        except DataValidationError as exc:
            rejected.append(Rejection(index=position, field=exc.column, problem=exc.problem))
    result = state.store.events.append(rows) if rows else None
    inserted = result.inserted if result else 0
    duplicates = result.duplicates if result else 0
    state.metrics.events_ingested.inc(inserted)
    state.metrics.events_duplicate.inc(duplicates)
    state.metrics.events_rejected.inc(len(rejected))
    rejected.sort(key=lambda r: r.index)
    return EventsOut(accepted=inserted + duplicates, duplicates=duplicates, rejected=rejected)
