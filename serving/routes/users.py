"""Customers: PUT/GET /v1/users/{user_id} (attributes, consents) and DELETE (erasure)."""

from __future__ import annotations

from fastapi import APIRouter

from recsys.errors import NotFoundError
from serving.deps import AdminKey, IngestKey, ReadKey, StateDep
from serving.schemas import BAD_BODY, V1_ERRORS, IdPath, problem
from serving.schemas_catalogue import CustomerIn, CustomerOut
from serving.schemas_privacy import ErasureReceiptOut

router = APIRouter(prefix="/v1", tags=["users"], responses=V1_ERRORS)


class UnknownCustomerError(NotFoundError):
    """No profile or attributes are stored for this user id."""


@router.put(
    "/users/{user_id}",
    response_model=CustomerOut,
    summary="Create or update a customer",
    responses=BAD_BODY,
)
def put_user(user_id: IdPath, body: CustomerIn, state: StateDep, key: IngestKey) -> CustomerOut:
    """Write the customer's e-mail, country, time zone (IANA name), consents per channel and
    free attributes. Fields left out keep their stored value; ``null`` clears one. Committed
    before the answer, which is the customer as ``GET`` returns it."""
    fields = body.model_dump(exclude_unset=True)
    return CustomerOut(**state.store.customers.put(user_id, fields))


@router.get(
    "/users/{user_id}",
    response_model=CustomerOut,
    summary="A customer's attributes and activity",
    responses={404: problem("Nothing is stored for this user")},
)
def get_user(user_id: IdPath, state: StateDep, key: ReadKey) -> CustomerOut:
    """The customer's attributes plus the aggregates of their events (first and last seen,
    event and purchase counts, revenue)."""
    customer = state.store.customers.get(user_id)
    if customer is None:
        raise UnknownCustomerError(f"user {user_id!r} is not known (no attributes, no events)")
    return CustomerOut(**customer)


@router.delete("/users/{user_id}", response_model=ErasureReceiptOut, summary="Erase a customer")
async def erase_user(user_id: IdPath, state: StateDep, key: AdminKey) -> ErasureReceiptOut:
    """Delete the customer's events, profile and attributes (and every store hooked into
    erasure) in one transaction, then drop their session state and trained vectors from every
    model replica, then cut their id, vector and history out of every registered model
    version's bundle and the local bundle caches. Future training excludes the customer.
    Answers with a receipt listing each artifact touched; a target that could not be scrubbed
    at once is ``pending`` and retried until done (``GET /v1/admin/erasures``)."""
    from starlette.concurrency import run_in_threadpool

    receipt = await run_in_threadpool(state.store.erase_user, user_id, key.actor)
    in_memory = await state.model.forget_user(user_id)
    scrubs = await run_in_threadpool(state.scrubber.erase, receipt)
    deleted = {**receipt["deleted"], "in_memory": int(in_memory)}
    return ErasureReceiptOut(
        receipt_id=receipt["receipt_id"],
        user_id=user_id,
        erased_at=receipt["erased_at"],
        deleted=deleted,
        scrubs=scrubs,
        pending=sum(s["status"] == "pending" for s in scrubs),
    )
