"""The FastAPI application factory (a fresh app per call: Ray Serve cannot deploy one app twice)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException  # also what FastAPI and Starlette raise

from recsys import __version__
from recsys.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RecsysError,
    UnavailableError,
)
from recsys.store import Store
from serving.console.app import create_console
from serving.deps import AppState
from serving.limits import BodySizeLimit
from serving.metrics import MetricsMiddleware, ServiceMetrics
from serving.model_client import ModelClient
from serving.request_id import RequestIdMiddleware, id_headers, request_id_of
from serving.routes import (
    admin,
    campaigns,
    events,
    health,
    items,
    privacy,
    recommendations,
    segments,
    users,
)
from serving.schemas import BAD_BODY
from serving.settings import Settings

logger = logging.getLogger(__name__)

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI and ReDoc files shipped in a package, so /docs works without a CDN."""

DESCRIPTION = """
Real-time recommendations and event ingestion for marketing automation.

Every `/v1` route needs an API key: `Authorization: Bearer <key>`. Roles: **read** (and
**marketer**) for recommendations, **ingest** for events, **admin** for everything including
erasure and model reloads. `/healthz`, `/readyz` and `/metrics` are open.
"""


class _AsciiJSON(JSONResponse):
    """Error bodies echo client input; ASCII JSON cannot fail on text UTF-8 cannot encode."""

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _problem(status: int, detail, headers=None) -> JSONResponse:
    return _AsciiJSON({"detail": detail}, status_code=status, headers=headers)


STATUS_OF_KIND: dict[type[RecsysError], int] = {
    InvalidInputError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    UnavailableError: 503,
}
"""The one place an error kind becomes an HTTP status (see recsys/errors.py)."""


def status_of(exc: RecsysError) -> int:
    """HTTP status of a recsys error, by its kind (500 for a kind-less RecsysError)."""
    for kind, status in STATUS_OF_KIND.items():
        if isinstance(exc, kind):
            return status
    return 500


def _describe_validation(exc: RequestValidationError) -> list[dict]:
    out = []
    for error in exc.errors():
        loc = error.get("loc", ())
        problem = error.get("msg", "invalid value")
        if error.get("type") == "json_invalid":  # loc is ("body", character position)
            reason = (error.get("ctx") or {}).get("error", "")
            problem = f"invalid JSON at character {loc[-1]}: {reason}".rstrip(": ")
            loc = loc[:1]
        out.append({"field": ".".join(str(part) for part in loc), "problem": problem})
    return out


def _internal_error(request: Request, exc: BaseException) -> JSONResponse:
    """Log the traceback under the request id, and return that id so the two can be matched."""
    request_id = request_id_of(request.scope)
    logger.error(
        "unhandled error on %s %s (request_id=%s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
        extra={"request_id": request_id},  # Starlette runs this handler outside the middleware
    )
    body = {"detail": "internal error; the server log has the details", "request_id": request_id}
    return _AsciiJSON(body, status_code=500, headers=id_headers(request.scope))


def _add_offline_docs(app: FastAPI) -> None:
    """FastAPI's recipe for self-hosted docs assets: /docs and /redoc from local files."""
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


BODY_ERRORS = {
    "400": BAD_BODY[400]["description"],
    "413": "The request body is larger than the service accepts",
}


def _document_bad_bodies(app: FastAPI) -> None:
    """Every operation that reads a JSON body may answer 400 (undecodable body) and 413 (body
    over the size limit): say so in the spec once here, instead of in each route."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            problem = {"$ref": "#/components/schemas/Problem"}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "requestBody" not in operation:
                        continue
                    for status, description in BODY_ERRORS.items():
                        operation["responses"].setdefault(
                            status,
                            {
                                "description": description,
                                "content": {"application/json": {"schema": problem}},
                            },
                        )
        return app.openapi_schema

    app.openapi = openapi


def create_app(settings: Settings, store: Store, model: ModelClient) -> FastAPI:
    """Assemble routes, dependencies, metrics and error handlers around a store and a model."""
    app = FastAPI(
        title="recsys",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served from local files by _add_offline_docs
        redoc_url=None,
        lifespan=privacy.lifespan,  # the periodic privacy job (retention, pending scrubs)
        openapi_tags=[
            {"name": "recommendations", "description": "Personalised, similar items, cross-sell."},
            {"name": "events", "description": "Event ingestion (committed before the answer)."},
            {"name": "items", "description": "The catalogue: upsert, read, deactivate items."},
            {"name": "users", "description": "Customer attributes and consents; erasure."},
            {"name": "admin", "description": "Model version and hot reload."},
            {"name": "privacy", "description": "Customer data export, erasure receipts."},
            {"name": "health", "description": "Open probes."},
        ],
    )
    metrics = ServiceMetrics()
    metrics.watch_store(store)
    app.state.recsys = AppState(settings=settings, store=store, model=model, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so every answer has the id

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _problem(422, _describe_validation(exc))

    @app.exception_handler(RecsysError)
    async def _recsys_error(request: Request, exc: RecsysError):
        status = status_of(exc)
        if status == 500:  # a RecsysError of no kind is as unexpected as any other bug
            return _internal_error(request, exc)
        headers = {"Retry-After": "5"} if status == 503 else None
        return _problem(status, str(exc), headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        detail = exc.detail
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's body decoding
            detail = f"the request body cannot be decoded: {exc.__cause__}"
        return _problem(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _internal_error(request, exc)

    # items after recommendations: /items/{id}/similar must win over /items/{id:path}.
    modules = (recommendations, items, events, users, admin, health, segments, campaigns, privacy)
    for module in modules:
        app.include_router(module.router)
    app.mount("/console", create_console(app.state.recsys))
    recommendations.document_max_k(app, settings.max_k)
    _document_bad_bodies(app)
    _add_offline_docs(app)
    return app
