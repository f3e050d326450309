"""Recommendation routes: personalised, similar items and cross-sell."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from serving.deps import ReadKey, StateDep
from serving.schemas import (
    BAD_BODY,
    V1_ERRORS,
    CrossSellIn,
    IdPath,
    RecommendationsOut,
    problem,
)

router = APIRouter(prefix="/v1", tags=["recommendations"], responses=V1_ERRORS)

K = Annotated[int, Query(ge=1, le=200, description="How many items to return.")]
# Category filters are plain arrays defaulting to [] (no filter), not "list | None": in a query
# string a nullable array cannot be told from a string, which confuses OpenAPI tooling.
ONLY = "Only these categories (repeatable)."
NEVER = "Never these categories (repeatable)."


def _filters(**values) -> dict:
    return {name: value for name, value in values.items() if value is not None}


async def _recent_events(state, user_id: str) -> list[dict]:
    if state.settings.session_events <= 0:
        return []
    events = await run_in_threadpool(
        state.store.events.recent, user_id, state.settings.session_events
    )
    return [
        {"item_id": e["item_id"], "timestamp": e["timestamp"].timestamp(),
         "event_type": e["event_type"]}
        for e in events if e["item_id"]
    ]  # fmt: skip


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsOut,
    summary="Personalised recommendations",
)
async def recommendations(
    user_id: IdPath,
    state: StateDep,
    key: ReadKey,
    k: K = 10,
    exclude_purchased: bool = Query(True, description="Drop items the customer bought."),
    exclude_seen: bool = Query(False, description="Drop every item the customer interacted with."),
    in_stock: bool = Query(True, description="Only items in stock."),
    category: list[str] = Query([], description=ONLY),
    exclude_category: list[str] = Query([], description=NEVER),
    min_price: float | None = Query(None, ge=0),
    max_price: float | None = Query(None, ge=0),
    suppress_recent: bool = Query(False, description="Drop items recommended recently."),
) -> RecommendationsOut:
    """Top-k items for the customer: their trained profile blended with their latest events (an
    event ingested a moment ago already counts); unknown customers get session-based or
    popular items. Filters never let a filtered item through; popular in-filter items backfill."""
    filters = _filters(
        exclude_purchased=exclude_purchased, exclude_seen=exclude_seen, in_stock=in_stock,
        categories=category or None, exclude_categories=exclude_category or None,
        min_price=min_price, max_price=max_price, suppress_recent=suppress_recent,
    )  # fmt: skip
    events = await _recent_events(state, user_id)
    answer = await state.model.recommend(user_id, k, events, filters)
    return RecommendationsOut(user_id=user_id, **answer)


@router.get(
    "/items/{item_id}/similar",
    response_model=RecommendationsOut,
    summary="Items similar to an item",
    responses={404: problem("Unknown item")},
)
async def similar_items(
    item_id: IdPath,
    state: StateDep,
    key: ReadKey,
    k: K = 10,
    in_stock: bool = Query(True),
    category: list[str] = Query([], description=ONLY),
    exclude_category: list[str] = Query([], description=NEVER),
    min_price: float | None = Query(None, ge=0),
    max_price: float | None = Query(None, ge=0),
) -> RecommendationsOut:
    """Items bought with or like this one (co-purchase, embedding similarity, popularity)."""
    filters = _filters(
        exclude_purchased=False, in_stock=in_stock, categories=category or None,
        exclude_categories=exclude_category or None, min_price=min_price, max_price=max_price,
    )  # fmt: skip
    answer = await state.model.similar(item_id, k, filters)
    return RecommendationsOut(item_id=item_id, **answer)


@router.post(
    "/recommendations/cross-sell",
    response_model=RecommendationsOut,
    summary="What goes with this basket",
    responses={**BAD_BODY, 404: problem("No basket item is known")},
)
async def cross_sell(body: CrossSellIn, state: StateDep, key: ReadKey) -> RecommendationsOut:
    """Items to add to a basket; basket items (and, with user_id, the customer's purchases) are
    never returned. Unknown basket items are ignored as long as one is known."""
    filters = _filters(
        in_stock=body.in_stock, categories=body.category,
        exclude_categories=body.exclude_category, min_price=body.min_price,
        max_price=body.max_price,
    )  # fmt: skip
    events = await _recent_events(state, body.user_id) if body.user_id else None
    answer = await state.model.cross_sell(body.items, body.k, body.user_id, events, filters)
    answer.pop("unknown_items", None)
    return RecommendationsOut(user_id=body.user_id, **answer)
