"""The console application, mounted at ``/console`` by :func:`serving.app.create_app`.

A sub-application so that its answers are HTML pages (errors included), it carries its own
security headers, and none of it appears in the API's OpenAPI document. Pages call the same
library functions as the API routes; nothing here re-implements a rule.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from recsys.errors import RecsysError
from serving.console import auth, campaigns, customers, items, models, overview, segments
from serving.console.render import base_url, page
from serving.console.session import ConsoleRefusal, SignInRequired
from serving.deps import AppState

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Plain ASGI: every console answer (pages, fragments, assets, errors) gets the headers;
    pages and fragments are not cached (they show customer data)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_asset = scope["path"].rstrip("/").split("/console", 1)[-1].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                headers += SECURITY_HEADERS
                cache = b"public, max-age=3600" if is_asset else b"no-store"
                message["headers"] = headers + [(b"cache-control", cache)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_fragment(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


def _error_page(request: Request, status: int, message: str, headers=None):
    if _wants_fragment(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    response = page(
        request, "error.html", getattr(request.state, "viewer", None), "", status_code=status,
        status=status, message=message,
    )  # fmt: skip
    if headers:
        response.headers.update(headers)
    return response


def create_console(state: AppState) -> FastAPI:
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.recsys = state
    console.add_middleware(SecurityHeaders)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")

    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired):
        if _wants_fragment(request) or request.method != "GET":
            return JSONResponse({"detail": str(exc)}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base_url(request)}/login?next={quote(target)}", 303)

    @console.exception_handler(ConsoleRefusal)
    async def _refused(request: Request, exc: ConsoleRefusal):
        return _error_page(request, exc.status, str(exc), exc.headers)

    @console.exception_handler(RecsysError)
    async def _recsys_error(request: Request, exc: RecsysError):
        from serving.app import status_of  # the API's one mapping of error kinds to statuses

        return _error_page(request, status_of(exc), str(exc))

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error_page(request, 422, problems or "invalid request")

    @console.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return _error_page(request, exc.status_code, str(exc.detail))

    for module in (auth, overview, customers, items, segments, campaigns, models):
        console.include_router(module.router)
    return console
