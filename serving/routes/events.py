"""POST /v1/events: validate each event, commit the valid ones, answer after the commit."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving.deps import IngestKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, EventsIn, EventsOut, Rejection, problem

router = APIRouter(prefix="/v1", tags=["events"], responses=V1_ERRORS)


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
    result = state.ingestor.ingest(body.events)
    state.metrics.events_ingested.inc(result.accepted - result.duplicates)
    state.metrics.events_duplicate.inc(result.duplicates)
    state.metrics.events_rejected.inc(len(result.rejected))
    return EventsOut(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[Rejection(**r.as_dict()) for r in result.rejected],
    )
