"""Model administration: which version answers, and a hot swap to the current champion."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serving.deps import AdminKey, StateDep
from serving.schemas import V1_ERRORS, ModelInfo, ReloadOut

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=V1_ERRORS)


@router.get("/model", response_model=ModelInfo, summary="The model being served")
async def model_info(state: StateDep, key: AdminKey) -> ModelInfo:
    return ModelInfo(**await state.model.info())


@router.post("/reload", response_model=ReloadOut, summary="Swap to the current champion")
async def reload_model(state: StateDep, key: AdminKey) -> ReloadOut:
    """Load the model the configured URI points at now (``models:/recsys@champion``) next to the
    serving one and swap when it is ready: requests in flight finish on the old model, none
    fails."""
    result = await state.model.reload()
    await run_in_threadpool(
        state.store.audit.record,
        key.actor,
        "model.reload",
        f"model:{result['version']}",
        {"previous_version": result["previous_version"], "changed": result["changed"]},
    )
    state.metrics.set_model(result["version"], (await state.model.info())["kind"])
    return ReloadOut(**result)
