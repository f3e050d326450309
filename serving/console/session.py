"""Console sign-in: the API key in an HttpOnly, SameSite=Strict cookie, a CSRF token per form.

The cookie holds the key itself, so every page is authenticated exactly as an API call with
that key is (role, revocation within the key cache's few seconds, rate limit) and any ingress
replica can serve any page: no session table. The CSRF token is an HMAC of the key, which a
page of another site can neither read (HttpOnly cookie, same-origin page) nor compute.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from recsys.store import ApiKeyRecord, Role
from serving.deps import AppState

COOKIE = "recsys_console"
LOGIN_COOKIE = "recsys_console_login"  # the sign-in form's CSRF token (no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PAGE_ROLES = (Role.READ, Role.MARKETER)  # what the API's GET routes need (admin always may)


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, fragments answer 401."""

    def __init__(self, message: str = "sign in with an API key") -> None:
        super().__init__(message)


class ConsoleRefusal(Exception):
    """A page or action the session may not have: shown as a page with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def csrf_of(token: str) -> str:
    return hmac.new(token.encode(), b"recsys-console-csrf", hashlib.sha256).hexdigest()


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_options(request: Request) -> dict:
    """HttpOnly and SameSite=Strict always; Secure when the console is reached over HTTPS."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": cookie_path(request),
    }


def cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/"


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the key's record, and the CSRF token of their forms."""

    record: ApiKeyRecord
    csrf: str

    @property
    def role(self) -> str:
        return self.record.role.value

    def can(self, *roles: Role) -> bool:
        return self.record.role.satisfies(*roles)

    def require(self, *roles: Role) -> None:
        """Refuse (403, as the API does) an action the key's role does not allow."""
        if not self.can(*roles):
            needed = " or ".join(r.value for r in roles)
            raise ConsoleRefusal(
                403, f"this needs a key with role {needed}; you signed in with role {self.role}"
            )


def state_of(request: Request) -> AppState:
    return request.app.state.recsys


async def signed_in(request: Request, token: str | None = None) -> Viewer:
    """The session's viewer (or the key being signed in with), rate-limited like the API."""
    state = state_of(request)
    token = token if token is not None else request.cookies.get(COOKIE, "")
    if not token:
        raise SignInRequired()
    record = state.cached_key(token) or await run_in_threadpool(state.authenticate, token)
    if record is None:
        raise SignInRequired("unknown or revoked API key; sign in again")
    if not record.role.satisfies(*PAGE_ROLES):  # an ingest key reads nothing on the API either
        raise ConsoleRefusal(
            403,
            f"this key has role {record.role.value}; the console needs a key with role read, "
            "marketer or admin (as the API's read routes do)",
        )
    decision = await state.limiter.check(record, "read")
    if not decision.allowed:
        retry = str(max(1, math.ceil(decision.retry_after)))
        raise ConsoleRefusal(
            429,
            f"this key is over its read rate of {decision.rate:g} requests per second; "
            f"retry in {retry} s",
            {"Retry-After": retry},
        )
    viewer = Viewer(record=record, csrf=csrf_of(token))
    request.state.viewer = viewer  # error pages keep the navigation
    return viewer


async def _viewer(request: Request) -> Viewer:
    return await signed_in(request)


async def _checked_writer(request: Request) -> Viewer:
    """A signed-in viewer whose form (or fetch header) carries the session's CSRF token."""
    viewer = await signed_in(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        sent = str(form.get(CSRF_FIELD, ""))
    if not hmac.compare_digest(sent, viewer.csrf):
        raise ConsoleRefusal(403, "the form's CSRF token is missing or stale; reload the page")
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]
"""Any page: a valid session."""
WriterDep = Annotated[Viewer, Depends(_checked_writer)]
"""Any POST: a valid session and its CSRF token (the role is checked by the action)."""
