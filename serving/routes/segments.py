"""Segments: rule definitions, preview, members, stats, a customer's segments, and audiences
(affinity and lookalike, by reverse search over the served model's user embeddings).

Reads need a read (or marketer) key, writes a marketer key (admin always). A definition that
does not validate is answered 422 with the JSON path of each offending part
(``definition.children[1].window.seconds``) instead of pydantic's raw location.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from recsys.segments.audiences import AudienceFinder
from recsys.segments.clusters import resolve_bundle
from recsys.segments.definitions import dump, json_path, problem_of
from recsys.store import user_hash
from serving.deps import MarketerKey, ReadKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, IdPath, problem
from serving.schemas_segments import (
    AffinityIn,
    AudienceOut,
    DeletedOut,
    LookalikeIn,
    MembersOut,
    PreviewIn,
    PreviewOut,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SegmentUpdate,
    StatsOut,
    UserSegmentsOut,
)


def field_of(loc: tuple) -> str:
    """``('body', 'definition', 'children', 1, 'performed', 'window', 'seconds')`` ->
    ``definition.children[1].window.seconds``."""
    parts = tuple(loc[1:]) if loc and loc[0] in ("body", "query", "path") else tuple(loc)
    if not parts:
        return "body"
    return json_path(parts[1:], str(parts[0]) or '""')  # an empty key still names a field


class SegmentRoute(APIRoute):
    """Request validation errors reported by JSON path (see the module doc)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as exc:
                detail = [
                    {"field": field_of(tuple(e.get("loc", ()))), "problem": problem_of(e)}
                    for e in exc.errors()
                ]
                return JSONResponse({"detail": detail}, status_code=422)

        return route


router = APIRouter(prefix="/v1", tags=["segments"], responses=V1_ERRORS, route_class=SegmentRoute)
NOT_FOUND = {404: problem("No such segment")}


def _out(state, row: dict) -> SegmentOut:
    return SegmentOut(**row, size=state.store.segments.size(row["id"]))


@router.get("/segments", response_model=SegmentList, summary="List segments")
def list_segments(state: StateDep, key: ReadKey) -> SegmentList:
    """Every segment (rule, static audiences, built-in RFM groups) with its current size."""
    return SegmentList(segments=[_out(state, r) for r in state.store.segments.all()])


@router.post(
    "/segments",
    response_model=SegmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a rule segment",
    responses={**BAD_BODY, 409: problem("The id is taken")},
)
def create_segment(body: SegmentIn, state: StateDep, key: MarketerKey) -> SegmentOut:
    """Store the definition and evaluate every customer against it before answering; members
    enter with segment events like any later entry."""
    row = state.segments.create(
        body.name,
        body.definition,
        segment_id=body.id,
        description=body.description,
        actor=key.actor,
    )
    return _out(state, row)


@router.post(
    "/segments/preview",
    response_model=PreviewOut,
    summary="Preview a definition",
    responses=BAD_BODY,
)
def preview_segment(body: PreviewIn, state: StateDep, key: ReadKey) -> PreviewOut:
    """How many customers a definition matches now, and a sample of them (nothing is saved)."""
    state.segments.check_references("__preview__", body.definition)
    return PreviewOut(**state.segments.engine.preview(body.definition, body.sample))


@router.get(
    "/segments/{segment_id}", response_model=SegmentOut, summary="A segment", responses=NOT_FOUND
)
def get_segment(segment_id: IdPath, state: StateDep, key: ReadKey) -> SegmentOut:
    return _out(state, state.store.segments.get(segment_id))


@router.put(
    "/segments/{segment_id}",
    response_model=SegmentOut,
    summary="Change a segment",
    responses={**BAD_BODY, **NOT_FOUND, 409: problem("The segment's rule is fixed")},
)
def update_segment(
    segment_id: IdPath, body: SegmentUpdate, state: StateDep, key: MarketerKey
) -> SegmentOut:
    """Change the name, description, active flag or definition; members are re-evaluated (and
    those of segments referencing it), with entry/exit events."""
    changes = body.model_dump(exclude_unset=True, exclude={"definition"})
    if body.definition is not None:
        changes["definition"] = dump(body.definition)
    return _out(state, state.segments.update(segment_id, changes))


@router.delete(
    "/segments/{segment_id}",
    response_model=DeletedOut,
    summary="Delete a segment",
    responses={**NOT_FOUND, 409: problem("Another segment references it")},
)
def delete_segment(segment_id: IdPath, state: StateDep, key: MarketerKey) -> DeletedOut:
    return DeletedOut(id=segment_id, members_removed=state.segments.delete(segment_id))


@router.get(
    "/segments/{segment_id}/members",
    response_model=MembersOut,
    summary="Members of a segment",
    responses=NOT_FOUND,
)
def segment_members(
    segment_id: IdPath,
    state: StateDep,
    key: ReadKey,
    cursor: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MembersOut:
    """One page of members by user id; ``next_cursor`` fetches the next page."""
    state.store.segments.get(segment_id)
    page = state.store.segments.members(segment_id, after=cursor, limit=limit)
    return MembersOut(members=page, next_cursor=page[-1]["user_id"] if len(page) == limit else None)


@router.get(
    "/segments/{segment_id}/stats",
    response_model=StatsOut,
    summary="Size, entries and exits per day",
    responses=NOT_FOUND,
)
def segment_stats(
    segment_id: IdPath,
    state: StateDep,
    key: ReadKey,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> StatsOut:
    return StatsOut(**state.segments.stats(segment_id, days))


@router.get(
    "/users/{user_id}/segments",
    response_model=UserSegmentsOut,
    summary="A customer's segments",
    tags=["users"],
)
def user_segments(user_id: IdPath, state: StateDep, key: ReadKey) -> UserSegmentsOut:
    """The segments the customer is in now (current right after an event's POST returns)."""
    return UserSegmentsOut(user_id=user_id, segments=state.store.segments.user_segments(user_id))


_BUILDING = threading.Lock()  # one audience index build at a time


def _build_finder(state, version: str) -> AudienceFinder:
    with _BUILDING:
        cached = state.audiences
        if cached is not None and cached.version == version:
            return cached
        settings = state.settings
        uri = settings.model_uri
        if not Path(uri).is_dir():  # the served version, not whatever the alias names now
            name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
            uri = f"models:/{name}/{version}"
        bundle, _ = resolve_bundle(uri, settings.mlflow_tracking_uri, settings.var_dir)
        state.audiences = AudienceFinder(bundle, version, device=settings.device)
        return state.audiences


async def audience_finder(state) -> AudienceFinder:
    """The audience indexes of the served model version (built on first use after a swap;
    one per app, shared by the API and the console)."""
    version = str((await state.model.info()).get("version"))
    finder = state.audiences
    if finder is None or finder.version != version:
        finder = await run_in_threadpool(_build_finder, state, version)
    await run_in_threadpool(finder.forget_hashed, state.store.erased_hashes(), user_hash)
    return finder


def _answer(state, key, finder, members, save) -> AudienceOut:
    segment = None
    if save is not None:
        row = state.segments.save_static(
            save.name, members, segment_id=save.id, description=save.description,
            actor=key.actor,
        )  # fmt: skip
        segment = _out(state, row)
    return AudienceOut(
        model_version=finder.version,
        members=[{"user_id": u, "score": s} for u, s in members],
        segment=segment,
    )


AUDIENCE_ERRORS = {**BAD_BODY, 404: problem("Unknown item, category or segment"),
                   409: problem("The id of the segment to save is taken"),
                   503: problem("No model is served")}  # fmt: skip


@router.post(
    "/audiences/affinity",
    response_model=AudienceOut,
    summary="Customers most likely to buy an item or category",
    tags=["audiences"],
    responses=AUDIENCE_ERRORS,
)
async def affinity_audience(body: AffinityIn, state: StateDep, key: MarketerKey) -> AudienceOut:
    """The ``n`` customers with the highest model score for ``item_id`` (or the mean of a
    ``category``'s items), best first; ``save`` stores them as a static segment with scores."""
    finder = await audience_finder(state)
    members = await run_in_threadpool(
        finder.affinity, body.n, item_id=body.item_id, category=body.category
    )
    return await run_in_threadpool(_answer, state, key, finder, members, body.save)


@router.post(
    "/audiences/lookalike",
    response_model=AudienceOut,
    summary="Customers most similar to a segment's members",
    tags=["audiences"],
    responses=AUDIENCE_ERRORS,
)
async def lookalike_audience(body: LookalikeIn, state: StateDep, key: MarketerKey) -> AudienceOut:
    """The ``n`` customers closest (cosine of user embeddings) to the mean of the seed
    segment's members, none of them in it; ``save`` stores them as a static segment."""
    seed = await run_in_threadpool(_all_members, state, body.segment_id)
    finder = await audience_finder(state)
    members = await run_in_threadpool(finder.lookalike, seed, body.n)
    return await run_in_threadpool(_answer, state, key, finder, members, body.save)


def _all_members(state, segment_id: str) -> list[str]:
    state.store.segments.get(segment_id)  # 404 for an unknown segment
    out, after = [], None
    while page := state.store.segments.members(segment_id, after=after, limit=5000):
        out += [m["user_id"] for m in page]
        after = page[-1]["user_id"]
    return out
