"""The catalogue: PUT /v1/items (upsert), GET and DELETE /v1/items/{item_id}.

Item ids may contain '/' (the path converter); the recommendations router is included first so
that ``/v1/items/{item_id}/similar`` still reaches the similar-items route.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from recsys.store import CatalogueItemNotFound
from recsys.store.catalogue import MAX_ITEMS_PER_CALL
from serving.deps import IngestKey, ReadKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, IdPath, Rejection, problem
from serving.schemas_catalogue import ItemOut, ItemsIn, ItemsOut

router = APIRouter(prefix="/v1", tags=["items"], responses=V1_ERRORS)
NOT_FOUND = {404: problem("No item with this id in the catalogue")}


@router.put(
    "/items",
    response_model=ItemsOut,
    summary=f"Upsert up to {MAX_ITEMS_PER_CALL} catalogue items",
    responses={**BAD_BODY, 413: problem("Too many items or body too large")},
)
def put_items(body: ItemsIn, state: StateDep, key: IngestKey) -> ItemsOut:
    """Insert or update items by ``item_id``. Each item is checked on its own: invalid items
    are listed in ``rejected`` with the field and the problem, the valid ones are committed
    before this answer is sent."""
    if len(body.items) > MAX_ITEMS_PER_CALL:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"at most {MAX_ITEMS_PER_CALL} items per request, got {len(body.items)}",
        )
    result = state.store.items.upsert(body.items)
    return ItemsOut(
        accepted=result.accepted, rejected=[Rejection(**r.as_dict()) for r in result.rejected]
    )


@router.get(
    "/items/{item_id:path}", response_model=ItemOut, summary="One item", responses=NOT_FOUND
)
def get_item(item_id: IdPath, state: StateDep, key: ReadKey) -> ItemOut:
    """The item as stored, inactive (deleted) items included."""
    item = state.store.items.get(item_id)
    if item is None:
        raise CatalogueItemNotFound(f"item {item_id!r} is not in the catalogue")
    return ItemOut(**item)


@router.delete(
    "/items/{item_id:path}",
    response_model=ItemOut,
    summary="Mark an item inactive",
    responses=NOT_FOUND,
)
def delete_item(item_id: IdPath, state: StateDep, key: IngestKey) -> ItemOut:
    """The item is no longer sold: it stays in the catalogue (history, reports) with
    ``active: false`` and is no longer recommended. Upserting it again reactivates it."""
    return ItemOut(**state.store.items.deactivate(item_id))
