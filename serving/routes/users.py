"""DELETE /v1/users/{user_id}: erasure of everything the service holds about a customer."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import AdminKey, StateDep
from serving.schemas import V1_ERRORS, ErasureOut, IdPath

router = APIRouter(prefix="/v1", tags=["users"], responses=V1_ERRORS)


@router.delete("/users/{user_id}", response_model=ErasureOut, summary="Erase a customer")
async def erase_user(user_id: IdPath, state: StateDep, key: AdminKey) -> ErasureOut:
    """Delete the customer's events and profile (and every store hooked into erasure) in one
    transaction, then drop their session state and trained vectors from every model replica.
    Future training excludes the customer. Answers with a receipt; the audit log records it."""
    from starlette.concurrency import run_in_threadpool

    receipt = await run_in_threadpool(state.store.erase_user, user_id, key.actor)
    in_memory = await state.model.forget_user(user_id)
    deleted = {**receipt["deleted"], "in_memory": int(in_memory)}
    return ErasureOut(
        receipt_id=receipt["receipt_id"],
        user_id=user_id,
        erased_at=receipt["erased_at"],
        deleted=deleted,
    )
