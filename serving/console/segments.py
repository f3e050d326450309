"""Segment pages: the list (sizes, size-over-time sparklines, the RFM grid as a heat map, the
clusters as a 2-D scatter), one segment (entries and exits per day, members page by page, its
definition) and the rule editor with a live preview.

Every figure and write is the call ``serving/routes/segments.py`` makes (``stats``, ``members``,
``check_references`` + ``engine.preview``, ``create``, ``update``), after validating with the
same pydantic bodies, and problems are named by the same JSON paths
(``definition.children[1].window.seconds: must be > 0``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from markupsafe import Markup
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from recsys.errors import ConflictError, DocumentError, InvalidInputError, RecsysError
from recsys.segments import views
from recsys.segments.clusters import STATE_NAME as CLUSTERS_STATE
from recsys.segments.clusters import resolve_bundle
from recsys.segments.definitions import dump
from recsys.segments.service import rfm_segment_id
from recsys.store import Role
from serving.console.render import base_url, chart_data, page
from serving.console.session import Viewer, ViewerDep, WriterDep, state_of
from serving.routes.segments import field_of, problem_of
from serving.schemas_segments import PreviewIn, SegmentIn, SegmentUpdate

router = APIRouter()
DAYS = 30
MEMBERS_PAGE = 50
PREVIEW_SAMPLE = 20
SCATTER_USERS = 2000
HEAT_BUCKETS = 5
_PROJECTING = threading.Lock()  # one bundle load for the scatter at a time


# -- the list ---------------------------------------------------------------------------------
def _sparkline(stats: dict) -> dict:
    days = stats["days"]
    return {
        "type": "line",
        "data": {
            "labels": [d["date"] for d in days],
            "datasets": [
                {
                    "label": "Members",
                    "data": [d["size"] for d in days],
                    "pointRadius": 0,
                    "borderWidth": 1.5,
                }
            ],
        },  # fmt: skip
        "options": {
            "plugins": {
                "legend": {"display": False},
                "tooltip": {"intersect": False, "mode": "index"},
            },
            "scales": {"x": {"display": False}, "y": {"display": False, "beginAtZero": True}},
        },  # fmt: skip
    }


def _heat(grid: dict) -> dict:
    """The grid with a shade bucket (0..HEAT_BUCKETS) per cell, for a CSS class."""
    top = max(grid["max"], 1)
    for row in grid["rows"]:
        for cell in row["cells"]:
            n = cell["count"]
            cell["bucket"] = 0 if n == 0 else max(1, -(-HEAT_BUCKETS * n // top))
    grid["links"] = {group: rfm_segment_id(group) for group, _ in grid["groups"]}
    return grid


def _listing(state) -> dict:
    rows = []
    every = state.segments.stats_of_all(DAYS)  # three queries, not three per segment
    for row in state.store.segments.all():
        stats = every.get(row["id"]) or state.segments.stats(row["id"], DAYS)  # made meanwhile
        rows.append({**row, "size": stats["size"], "spark": _sparkline(stats),
                     "first": stats["days"][0]["size"]})  # fmt: skip
    clusters = state.store.segments.get_state(CLUSTERS_STATE) or {}
    return {
        "segments": rows,
        "rfm": _heat(views.rfm_grid(views.rfm_score_counts(state.store))),
        "clusters": clusters.get("clusters", []),
        "clusters_computed_at": clusters.get("computed_at"),
    }


def _project(app, settings, version: str) -> dict:
    """The 2-D projection of a sample of the served version's user embeddings (cached on the
    console app per version; the bundle is resolved as the audience routes resolve it)."""
    with _PROJECTING:
        cached = getattr(app.state, "segment_projection", None)
        if cached is not None and cached["version"] == version:
            return cached
        uri = settings.model_uri
        if not Path(uri).is_dir():  # the served version, not whatever the alias names now
            name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
            uri = f"models:/{name}/{version}"
        try:
            bundle, _ = resolve_bundle(uri, settings.mlflow_tracking_uri, settings.var_dir)
            ids, xy = views.embedding_sample(bundle, SCATTER_USERS)
            cached = {"version": version, "user_ids": ids, "xy": xy.round(4), "problem": None}
        except InvalidInputError as exc:  # e.g. a bundle without user vectors: it stays so
            cached = {"version": version, "user_ids": [], "xy": None, "problem": str(exc)}
        app.state.segment_projection = cached
        return cached


def _scatter(projection: dict, clusters: dict[str, int]) -> dict:
    groups: dict[int | None, list[dict]] = {}
    for user, (x, y) in zip(projection["user_ids"], projection["xy"].tolist(), strict=True):
        groups.setdefault(clusters.get(user), []).append({"x": x, "y": y})
    order = sorted(c for c in groups if c is not None) + ([None] if None in groups else [])
    datasets = [
        {"label": f"Cluster {c}" if c is not None else "No cluster", "data": groups[c],
         "pointRadius": 3}
        for c in order
    ]  # fmt: skip
    axis = {"title": {"display": True}, "ticks": {"display": False}}
    return {
        "type": "scatter",
        "data": {"datasets": datasets},
        "options": {
            "scales": {
                "x": {**axis, "title": {"display": True, "text": "Component 1"}},
                "y": {**axis, "title": {"display": True, "text": "Component 2"}},
            },
            "plugins": {"legend": {"position": "right", "labels": {"usePointStyle": True}}},
        },  # fmt: skip
    }


async def _cluster_chart(
    request: Request, state, computed_at: str | None
) -> tuple[Markup | None, str | None, str]:
    """``(scatter spec as page JSON, problem, model version)`` for the served model, with the
    clusters of the refresh made at ``computed_at``."""
    version = (await state.model.info()).get("version")
    if version is None:
        return None, "No model is served, so there are no user embeddings to draw.", ""
    version = str(version)
    projection = getattr(request.app.state, "segment_projection", None)
    try:
        if projection is None or projection["version"] != version:
            projection = await run_in_threadpool(_project, request.app, state.settings, version)
    except RecsysError as exc:  # the registry is unreachable: try again next time
        return None, str(exc), version
    if projection["problem"]:
        return None, projection["problem"], version
    # The clusters change only with a batch refresh: the drawn chart is kept per refresh.
    cached = projection.get("chart")
    if cached is None or cached[0] != computed_at:
        clusters = await run_in_threadpool(
            views.stored_clusters, state.store, projection["user_ids"]
        )
        cached = projection["chart"] = (computed_at, chart_data(_scatter(projection, clusters)))
    return cached[1], None, version


@router.get("/segments")
async def segments(request: Request, viewer: ViewerDep):
    state = state_of(request)
    listing = await run_in_threadpool(_listing, state)
    computed_at = listing.pop("clusters_computed_at")
    scatter, scatter_problem, version = await _cluster_chart(request, state, computed_at)
    return page(
        request, "segments.html", viewer, "segments", can_write=viewer.can(Role.MARKETER),
        scatter=scatter, scatter_problem=scatter_problem, model_version=version,
        sample_size=SCATTER_USERS, days=DAYS, **listing,
    )  # fmt: skip


# -- the editor -------------------------------------------------------------------------------
def _problems(exc: ValidationError) -> list[dict]:
    return [{"field": field_of(tuple(e["loc"])), "problem": problem_of(e)} for e in exc.errors()]


def _parse(text: str) -> tuple[Any, list[dict]]:
    """The definition typed in the editor as JSON, or the problem (with its offset)."""
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        return None, [{"field": "definition", "problem": problem, "pos": exc.pos}]


def _refused(exc: RecsysError) -> dict:
    if isinstance(exc, DocumentError):
        return {"field": exc.path, "problem": exc.problem}
    field, sep, problem = str(exc).partition(": ")
    if sep and " " not in field:  # "id: 'X' is not a segment id ..."
        return {"field": field, "problem": problem}
    return {"field": "id" if isinstance(exc, ConflictError) else "", "problem": str(exc)}


def _preview(state, text: str) -> tuple[int, dict]:
    data, problems = _parse(text)
    if problems:
        return 422, {"detail": problems}
    try:
        body = PreviewIn.model_validate({"definition": data, "sample": PREVIEW_SAMPLE})
    except ValidationError as exc:
        return 422, {"detail": _problems(exc)}
    try:
        state.segments.check_references("__preview__", body.definition)
        return 200, state.segments.engine.preview(body.definition, body.sample)
    except DocumentError as exc:
        return 422, {"detail": [_refused(exc)]}


@router.post("/segments/preview")
async def preview(request: Request, viewer: WriterDep):
    """Fragment: ``{"definition": "<the editor's text>"}`` -> ``{"count", "sample"}``, or 422
    with ``detail: [{field, problem, pos?}]``."""
    try:
        text = (await request.json()).get("definition")
    except (ValueError, AttributeError):
        text = None
    if not isinstance(text, str) or len(text) > 200_000:
        return JSONResponse({"detail": [{"field": "", "problem": "send the definition text"}]},
                            status_code=400)  # fmt: skip
    status, answer = await run_in_threadpool(_preview, state_of(request), text)
    return JSONResponse(answer, status_code=status)


def _editor(
    request: Request, viewer: Viewer, form: dict, segment: dict | None = None,
    problems: list[dict] | None = None, status_code: int = 200,
):  # fmt: skip
    problems = problems or []
    by_field = {}
    for p in problems:
        field = p["field"].split(".")[0].split("[")[0]
        by_field.setdefault("" if segment and field == "id" else field, p)  # no id input
    return page(
        request, "segment_edit.html", viewer, "segments", status_code=status_code,
        form=form, segment=segment, problems=problems, by_field=by_field,
        can_write=viewer.can(Role.MARKETER),
    )  # fmt: skip


def _pretty(definition: Any) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False)


NEW_DEFINITION = {"type": "attribute", "path": "country", "op": "eq", "value": "FR"}


@router.get("/segments/new")
async def new_segment(request: Request, viewer: ViewerDep):
    form = {"id": "", "name": "", "description": "", "definition": _pretty(NEW_DEFINITION)}
    return _editor(request, viewer, form)


def _form_of(raw) -> dict:
    return {
        "id": str(raw.get("id", "")).strip(),
        "name": str(raw.get("name", "")),
        "description": str(raw.get("description", "")),
        "definition": str(raw.get("definition", "")),
        "active": raw.get("active") is not None,
    }


def _create(state, form: dict, actor: str) -> tuple[dict | None, list[dict], int]:
    data, problems = _parse(form["definition"])
    if problems:
        return None, problems, 422
    try:
        body = SegmentIn.model_validate(
            {"id": form["id"] or None, "name": form["name"], "description": form["description"],
             "definition": data}
        )  # fmt: skip
    except ValidationError as exc:
        return None, _problems(exc), 422
    try:
        row = state.segments.create(
            body.name, body.definition, segment_id=body.id, description=body.description,
            actor=actor,
        )  # fmt: skip
    except (InvalidInputError, ConflictError) as exc:
        return None, [_refused(exc)], 409 if isinstance(exc, ConflictError) else 422
    return row, [], 201


@router.post("/segments")
async def create_segment(request: Request, viewer: WriterDep):
    viewer.require(Role.MARKETER)
    form = _form_of(await request.form())
    row, problems, status = await run_in_threadpool(
        _create, state_of(request), form, viewer.record.actor
    )
    if row is None:
        return _editor(request, viewer, form, problems=problems, status_code=status)
    return RedirectResponse(f"{base_url(request)}/segments/{row['id']}", 303)


def _rule_segment(state, segment_id: str) -> dict:
    row = state.store.segments.get(segment_id)
    if row["kind"] != "rule":
        raise ConflictError(f"segment {segment_id!r} is {row['kind']}; its rule is fixed")
    return row


@router.get("/segments/{segment_id:path}/edit")
async def edit_segment(request: Request, segment_id: str, viewer: ViewerDep):
    row = await run_in_threadpool(_rule_segment, state_of(request), segment_id)
    form = {**row, "definition": _pretty(row["definition"])}
    return _editor(request, viewer, form, segment=row)


def _update(state, segment_id: str, form: dict) -> tuple[list[dict], int]:
    data, problems = _parse(form["definition"])
    if problems:
        return problems, 422
    try:
        body = SegmentUpdate.model_validate(
            {"name": form["name"], "description": form["description"], "active": form["active"],
             "definition": data}
        )  # fmt: skip
    except ValidationError as exc:
        return _problems(exc), 422
    changes = body.model_dump(exclude_unset=True, exclude={"definition"})
    if body.definition is not None:
        changes["definition"] = dump(body.definition)
    try:
        state.segments.update(segment_id, changes)
    except (InvalidInputError, ConflictError) as exc:
        return [_refused(exc)], 409 if isinstance(exc, ConflictError) else 422
    return [], 200


@router.post("/segments/{segment_id:path}")
async def update_segment(request: Request, segment_id: str, viewer: WriterDep):
    viewer.require(Role.MARKETER)
    state = state_of(request)
    row = await run_in_threadpool(_rule_segment, state, segment_id)
    form = _form_of(await request.form()) | {"id": segment_id}
    problems, status = await run_in_threadpool(_update, state, segment_id, form)
    if problems:
        return _editor(request, viewer, form, segment=row, problems=problems, status_code=status)
    return RedirectResponse(f"{base_url(request)}/segments/{segment_id}", 303)


# -- one segment ------------------------------------------------------------------------------
def _changes_chart(stats: dict) -> dict:
    days = stats["days"]
    return {
        "type": "bar",
        "data": {
            "labels": [d["date"][5:] for d in days],
            "datasets": [
                {"label": "Entries", "data": [d["entries"] for d in days]},
                {"label": "Exits", "data": [d["exits"] for d in days]},
            ],
        },
        "options": {"scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}},
    }


def _segment(state, segment_id: str, after: str | None) -> dict:
    row = state.store.segments.get(segment_id)
    stats = state.segments.stats(segment_id, DAYS)
    members = state.store.segments.members(segment_id, after=after, limit=MEMBERS_PAGE + 1)
    more = len(members) > MEMBERS_PAGE
    members = members[:MEMBERS_PAGE]
    return {
        "segment": row,
        "stats": stats,
        "chart": _changes_chart(stats),
        "members": members,
        "next_after": members[-1]["user_id"] if more else None,
        "definition": _pretty(row["definition"]) if row["definition"] else None,
    }


@router.get("/segments/{segment_id:path}")
async def segment(
    request: Request,
    segment_id: str,
    viewer: ViewerDep,
    after: Annotated[str | None, Query(max_length=255)] = None,
):
    known = await run_in_threadpool(_segment, state_of(request), segment_id, after)
    return page(
        request, "segment.html", viewer, "segments", after=after, days=DAYS,
        can_write=viewer.can(Role.MARKETER), **known,
    )  # fmt: skip
