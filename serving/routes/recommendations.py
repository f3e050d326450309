"""Recommendation routes: personalised, similar items, cross-sell, and the category vocabulary
their filters use. Each route builds one typed request and sends it to the model."""

from __future__ import annotations

import difflib
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError

from recsys.recommend import (
    CategoriesRequest,
    CrossSellRequest,
    Filters,
    RecommendRequest,
    SimilarRequest,
)
from serving.deps import ReadKey, StateDep
from serving.schemas import (
    BAD_BODY,
    V1_ERRORS,
    CategoriesOut,
    CrossSellIn,
    IdPath,
    RecommendationsOut,
    problem,
)


async def _known_query(request: Request, key: ReadKey) -> None:
    """Refuse query parameters the route does not take (after auth: a 401 comes first)."""
    route = request.scope.get("route")
    known = _query_names(route.dependant) if route is not None else frozenset()
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if unknown:
        raise RequestValidationError([_unknown_parameter(name, known) for name in unknown])


router = APIRouter(
    prefix="/v1",
    tags=["recommendations"],
    responses=V1_ERRORS,
    dependencies=[Depends(_known_query)],
)

K = Annotated[int, Query(ge=1, description="How many items to return (at most max_k).")]
# Category filters are plain arrays defaulting to [] (no filter), not "list | None": in a query
# string a nullable array cannot be told from a string, which confuses OpenAPI tooling.
ONLY = "Only these categories (repeatable; any case; GET /v1/categories lists them)."
NEVER = "Never these categories (repeatable; any case)."


def _check_k(k: int, state, where: str) -> int:
    """``k`` within the service's ``max_k`` (RECSYS_MAX_K), else a 422 naming both."""
    limit = state.settings.max_k
    if k > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": (where, "k"), "input": k,
            "msg": f"k must be at most {limit} (the service's max_k), got {k}",
        }])  # fmt: skip
    return k


def document_max_k(app: FastAPI, max_k: int) -> None:
    """State ``max_k`` as the maximum of every ``k`` in ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] == "k" and parameter["in"] == "query":
                            parameter["schema"]["maximum"] = max_k
            body = schema.get("components", {}).get("schemas", {}).get("CrossSellIn")
            if body:
                body["properties"]["k"]["maximum"] = max_k
        return app.openapi_schema

    app.openapi = openapi


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
    popular items. Filters never let a filtered item through; popular in-filter items backfill.
    An unknown category or query parameter is a 422 naming close matches."""
    filters = Filters(
        exclude_purchased=exclude_purchased, exclude_seen=exclude_seen, in_stock=in_stock,
        categories=category or None, exclude_categories=exclude_category,
        min_price=min_price, max_price=max_price, suppress_recent=suppress_recent,
    )  # fmt: skip
    k = _check_k(k, state, "query")
    events = await state.session_events(user_id)
    answer = await state.model.answer(RecommendRequest(user_id, k, events, filters))
    return RecommendationsOut(user_id=user_id, **answer)


@router.get(
    "/items/{item_id:path}/similar",
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
    """Items bought with or like this one (co-purchase, embedding similarity, popularity). Item
    ids may contain ``/``. An unknown category or query parameter is a 422 naming close
    matches."""
    filters = Filters(
        exclude_purchased=False, in_stock=in_stock, categories=category or None,
        exclude_categories=exclude_category, min_price=min_price, max_price=max_price,
    )  # fmt: skip
    k = _check_k(k, state, "query")
    answer = await state.model.answer(SimilarRequest(item_id, k, filters))
    return RecommendationsOut(item_id=item_id, **answer)


@router.post(
    "/recommendations/cross-sell",
    response_model=RecommendationsOut,
    summary="What goes with this basket",
    responses={**BAD_BODY, 404: problem("No basket item is known")},
)
async def cross_sell(body: CrossSellIn, state: StateDep, key: ReadKey) -> RecommendationsOut:
    """Items to add to a basket; basket items (and, with user_id, the customer's purchases) are
    never returned. Unknown basket items are ignored as long as one is known or has its category
    in ``categories``; an unknown filter category is a 422 naming close matches."""
    k = _check_k(body.k, state, "body")
    filters = Filters(
        in_stock=body.in_stock, categories=body.category or None,
        exclude_categories=body.exclude_category, min_price=body.min_price,
        max_price=body.max_price,
    )  # fmt: skip
    events = await state.session_events(body.user_id) if body.user_id else None
    request = CrossSellRequest(body.items, k, body.user_id, events, filters, body.categories)
    answer = await state.model.answer(request)
    answer.pop("unknown_items", None)
    return RecommendationsOut(user_id=body.user_id, **answer)


@router.get("/categories", response_model=CategoriesOut, summary="Categories of the catalogue")
async def categories(state: StateDep, key: ReadKey) -> CategoriesOut:
    """The served catalogue's categories with their item counts, by name: the names the
    ``category`` and ``exclude_category`` filters accept (in any case)."""
    return CategoriesOut(**await state.model.answer(CategoriesRequest()))


def _query_names(dependant) -> frozenset[str]:
    """The query parameters a route takes, its dependencies' included (a handful of fields)."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _unknown_parameter(name: str, known: frozenset[str]) -> dict:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    takes = ", ".join(sorted(known)) or "no query parameters"
    return {
        "type": "extra_forbidden", "loc": ("query", name), "input": name,
        "msg": f"unknown query parameter {name!r}{hint} (this route takes {takes})",
    }  # fmt: skip
