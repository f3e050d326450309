"""Item pages: search the catalogue by id prefix or title, and one item with its catalogue data,
similar items and "bought together" (the engine calls of ``GET /v1/items/{id}/similar`` and
``POST /v1/recommendations/cross-sell``) and its affinity audience (the finder of
``POST /v1/audiences/affinity``, shown to the roles that route allows)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from recsys.errors import NotFoundError, RecsysError
from recsys.recommend import CrossSellRequest, Filters, SimilarRequest
from recsys.store import Role
from serving.console.render import base_url, page
from serving.console.session import ViewerDep, state_of
from serving.routes.segments import audience_finder

router = APIRouter()
K = 10
AUDIENCE = 10


@router.get("/items")
async def search(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=200)] = "",
):
    state = state_of(request)
    found = await run_in_threadpool(state.store.items.search, q) if q.strip() else []
    if len(found) == 1 and found[0]["item_id"] == q.strip():
        return RedirectResponse(f"{base_url(request)}/items/{found[0]['item_id']}", 303)
    return page(request, "items.html", viewer, "items", q=q, found=found)


async def _answer(state, request) -> tuple[dict | None, str | None]:
    """The engine's answer, or why there is none (an item the model does not know)."""
    try:
        return await state.model.answer(request), None
    except RecsysError as exc:
        return None, str(exc)


async def _audience(request: Request, state, item_id: str) -> tuple[list, str | None, str | None]:
    try:
        finder = await audience_finder(state)
        members = await run_in_threadpool(finder.affinity, AUDIENCE, item_id=item_id)
    except RecsysError as exc:
        return [], None, str(exc)
    return members, finder.version, None


@router.get("/items/{item_id:path}")
async def item(request: Request, item_id: str, viewer: ViewerDep):
    state = state_of(request)
    row = await run_in_threadpool(state.store.items.get, item_id)
    if row is None:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue")
    # The API's defaults: similar items may include ones the viewer bought; in stock only.
    similar, similar_problem = await _answer(
        state, SimilarRequest(item_id, K, Filters(exclude_purchased=False))
    )
    together, together_problem = await _answer(state, CrossSellRequest([item_id], K))
    context: dict[str, Any] = {"audience": [], "audience_version": None, "audience_problem": None}
    if viewer.can(Role.MARKETER):
        members, version, problem = await _audience(request, state, item_id)
        context = {"audience": members, "audience_version": version, "audience_problem": problem}
    return page(
        request, "item.html", viewer, "items",
        item=row, similar=similar, similar_problem=similar_problem, together=together,
        together_problem=together_problem, can_audience=viewer.can(Role.MARKETER), **context,
    )  # fmt: skip
