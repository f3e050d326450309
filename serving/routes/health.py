"""Open probes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from serving.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: a model is loaded and the store answers",
    responses={503: {"description": "No model loaded yet"}},
)
async def readyz(state: StateDep) -> Response:
    model = await state.model.info()
    ready = bool(model.get("version"))
    body = {"status": "ready" if ready else "loading", "model_version": model.get("version")}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    info = await state.model.info()
    if info.get("version"):
        state.metrics.set_model(info["version"], info.get("kind", ""))
    return state.metrics.render()
