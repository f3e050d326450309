"""Customer pages: search by id or e-mail, and one customer with everything the service knows
and would do for them now (recommendations from the same engine call as the API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from recsys.errors import NotFoundError
from recsys.recommend import RecommendRequest
from recsys.segments.documents import customer_document
from serving.console.render import base_url, page
from serving.console.session import ViewerDep, state_of

router = APIRouter()
RECENT_EVENTS = 20
MESSAGES = 20
RECOMMENDATIONS = 10


@router.get("/customers")
async def search(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=320)] = "",
):
    state = state_of(request)
    found = await run_in_threadpool(state.store.customers.search, q) if q.strip() else []
    if len(found) == 1 and q.strip() in (found[0]["user_id"], (found[0]["email"] or "").lower()):
        return RedirectResponse(f"{base_url(request)}/customers/{found[0]['user_id']}", 303)
    return page(request, "customers.html", viewer, "customers", q=q, found=found)


def _customer(store, user_id: str) -> dict:
    doc = customer_document(store.engine, user_id)
    if doc is None:
        raise NotFoundError(f"user {user_id!r} is not known (no attributes, no events)")
    return {
        "customer": doc,
        "segments": store.segments.user_segments(user_id),
        "events": store.events.recent(user_id, RECENT_EVENTS),
        "messages": store.campaigns.messages(user_id=user_id, limit=MESSAGES, newest_first=True),
    }


@router.get("/customers/{user_id:path}")
async def customer(request: Request, user_id: str, viewer: ViewerDep):
    state = state_of(request)
    known = await run_in_threadpool(_customer, state.store, user_id)
    events = await state.session_events(user_id)
    answer = await state.model.answer(RecommendRequest(user_id, RECOMMENDATIONS, events))
    return page(
        request, "customer.html", viewer, "customers",
        user_id=user_id, answer=answer, **known,
    )  # fmt: skip
