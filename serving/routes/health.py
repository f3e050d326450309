"""Open probes: liveness, readiness and Prometheus metrics (GET and HEAD for the probes)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from recsys.store import DatabaseUnavailableError
from recsys.store.db import check_connection
from serving.deps import StateDep

router = APIRouter(tags=["health"])

STORE_TIMEOUT_S = 2.0
"""A store that does not answer a ``SELECT 1`` within this is not ready."""


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict:
    return {"status": "ok"}


async def _store_problem(state) -> str | None:
    """Why the store is not ready (None when a ``SELECT 1`` answers in time)."""
    try:  # in a thread: a slow database must not stall the event loop
        await asyncio.wait_for(
            run_in_threadpool(check_connection, state.store.engine), STORE_TIMEOUT_S
        )
    except DatabaseUnavailableError as exc:
        return str(exc)
    except TimeoutError:
        return f"the store did not answer within {STORE_TIMEOUT_S:g} s"
    return None


@router.get(
    "/readyz",
    summary="Readiness: a model is loaded and the store answers",
    responses={503: {"description": "No model loaded yet, or the store does not answer"}},
)
async def readyz(state: StateDep) -> Response:
    model = await state.model.info()
    version = model.get("version")
    reasons = [] if version else ["no model loaded yet"]
    store_problem = await _store_problem(state)
    if store_problem:
        reasons.append(store_problem)
    body = {
        "status": "unavailable" if store_problem else "loading" if reasons else "ready",
        "model_version": version,
        "store": "unavailable" if store_problem else "ok",
    }
    if reasons:
        body["reasons"] = reasons
    return JSONResponse(body, status_code=503 if reasons else 200)


# Load balancers and uptime checkers probe with HEAD; same answers, no body.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    info = await state.model.info()
    if info.get("version"):
        state.metrics.set_model(info["version"], info.get("kind", ""))
    return state.metrics.render()
