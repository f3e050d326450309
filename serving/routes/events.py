"""POST /v1/events: validate each event, commit the valid ones, answer after the commit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from serving.deps import IngestKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, EventsIn, EventsOut, Rejection, problem

router = APIRouter(prefix="/v1", tags=["events"], responses=V1_ERRORS)


def _json_body(request: Request) -> None:
    """A body declared as something else (curl -d sends a form) is refused with the fix."""
    declared = request.headers.get("content-type")
    media = (declared or "").split(";")[0].strip().lower()
    if declared is not None and media != "application/json" and not media.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"the body must be JSON sent with the header 'Content-Type: application/json' "
            f"(got {declared!r})",
        )


JsonBody = Annotated[None, Depends(_json_body)]


@router.post(
    "/events",
    response_model=EventsOut,
    summary="Ingest up to 1000 events",
    responses={
        **BAD_BODY,
        413: problem("Too many events or body too large"),
        415: problem("The body is not sent as 'Content-Type: application/json'"),
        422: problem(
            "Invalid body, or every event of the batch was rejected: one detail entry per "
            "event (field body.events.<index>.<field>)"
        ),
    },
)
def ingest_events(body: EventsIn, state: StateDep, key: IngestKey, _json: JsonBody) -> EventsOut:
    """Store shop events. Each event is checked on its own: invalid events are listed in
    ``rejected`` with the field and the problem, the valid ones are committed before this answer
    is sent (an acknowledged event survives a crash). Re-sending an event with the same
    ``event_id`` is acknowledged again but stored once. When every event of a non-empty batch is
    rejected, nothing is stored and the answer is a 422 listing each event's problem."""
    limit = state.settings.max_events_per_request
    if len(body.events) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"at most {limit} events per request, got {len(body.events)}",
        )
    result = state.ingestor.ingest(body.events)
    state.metrics.ingested(result.accepted - result.duplicates)
    state.metrics.events_duplicate.inc(result.duplicates)
    state.metrics.events_rejected.inc(len(result.rejected))
    if body.events and len(result.rejected) == len(body.events):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "field": ".".join(
                        ["body", "events", str(r.index)] + ([r.field] if r.field else [])
                    ),
                    "problem": r.problem,
                }
                for r in result.rejected
            ],
        )
    return EventsOut(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[Rejection(**r.as_dict()) for r in result.rejected],
    )
