"""The models page: the registered versions and aliases in MLflow with their runs' metrics side
by side and the served version marked; promote (alias champion, as training does) and reload
(``POST /v1/admin/reload``) for admin keys. A service serving a local bundle directory has no
registry: the page says so and shows the bundle's metrics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from recsys.errors import ConflictError, NotFoundError, RecsysError
from recsys.store import Role
from serving.console.render import base_url, page
from serving.console.session import Viewer, ViewerDep, WriterDep, state_of
from serving.routes.admin import reload_model

router = APIRouter()
MAX_VERSIONS = 8  # columns of the metrics table: the newest versions
_LOCK = threading.Lock()
_REGISTRIES: dict[str, Any] = {}
_RUN_METRICS: dict[str, dict[str, float]] = {}  # ended runs only: their metrics are final


def _registry(tracking_uri: str):
    """One Registry per tracking URI (opening an MLflow store checks its schema: slow)."""
    from recsys.registry import Registry  # MLflow is imported only where a registry is used

    with _LOCK:
        if tracking_uri not in _REGISTRIES:
            _REGISTRIES[tracking_uri] = Registry(tracking_uri)
        return _REGISTRIES[tracking_uri]


def _run_metrics(registry, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    if run_id not in _RUN_METRICS:
        metrics, final = registry.run_metrics(run_id)
        if not final:  # a run still logging: read again next time
            return metrics
        _RUN_METRICS[run_id] = metrics
    return _RUN_METRICS[run_id]


def uses_registry(settings) -> bool:
    return settings.model_uri.startswith("models:/") and not Path(settings.model_uri).is_dir()


def _versions(settings) -> dict[str, Any]:
    """Versions (newest first), the metric names of all of them, or the registry's problem."""
    try:
        registry = _registry(settings.mlflow_tracking_uri)
        versions = registry.versions()[:MAX_VERSIONS]
        for v in versions:
            v["metrics"] = _run_metrics(registry, v["run_id"])
            v["created_at"] = (
                datetime.fromtimestamp(v["created"] / 1000, UTC) if v["created"] else None
            )
    except RecsysError as exc:
        return {"versions": [], "metric_names": [], "problem": str(exc)}
    names = sorted({name for v in versions for name in v["metrics"]})
    return {"versions": versions, "metric_names": names, "problem": None}


@router.get("/models")
async def models(
    request: Request,
    viewer: ViewerDep,
    done: Annotated[str, Query(max_length=200)] = "",
):
    state = state_of(request)
    info = await state.model.info()
    registry = uses_registry(state.settings)
    listing = await run_in_threadpool(_versions, state.settings) if registry else {}
    return page(
        request, "models.html", viewer, "models",
        info=info, registry=registry, settings=state.settings, done=done,
        is_admin=viewer.can(Role.ADMIN), **listing,
    )  # fmt: skip


def _promote(settings, version: int) -> str | None:
    from recsys.registry import CHAMPION

    registry = _registry(settings.mlflow_tracking_uri)
    if version not in {v["version"] for v in registry.versions()}:
        raise NotFoundError(f"model version {version} is not registered")
    previous = registry.alias_version(CHAMPION)
    registry.set_alias(CHAMPION, version)
    return None if previous is None else str(previous.version)


async def _admin(viewer: WriterDep) -> Viewer:
    """The role is checked before the form is: another key is refused whatever it sends."""
    viewer.require(Role.ADMIN)
    return viewer


AdminDep = Annotated[Viewer, Depends(_admin)]


@router.post("/models/promote")
async def promote(
    request: Request,
    viewer: AdminDep,
    version: Annotated[int, Form(ge=1)],
):
    """Point the champion alias at ``version`` (what the training job does when a candidate
    wins); the service serves it after a reload (or its next poll)."""
    state = state_of(request)
    if not uses_registry(state.settings):
        raise ConflictError(
            f"the service serves the bundle directory {state.settings.model_uri}, not a "
            "registered model: there is no alias to move"
        )
    previous = await run_in_threadpool(_promote, state.settings, version)
    await run_in_threadpool(
        state.store.audit.record, viewer.record.actor, "model.promote", f"model:{version}",
        {"alias": "champion", "previous_version": previous},
    )  # fmt: skip
    done = f"version {version} is now the champion; reload to serve it"
    return RedirectResponse(f"{base_url(request)}/models?{urlencode({'done': done})}", 303)


@router.post("/models/reload")
async def reload(request: Request, viewer: AdminDep):
    """``POST /v1/admin/reload`` itself: load what the URI names now, swap, audit."""
    result = await reload_model(state_of(request), viewer.record)
    done = f"serving version {result.version}" + ("" if result.changed else " (unchanged)")
    return RedirectResponse(f"{base_url(request)}/models?{urlencode({'done': done})}", 303)
