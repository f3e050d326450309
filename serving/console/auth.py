"""Sign-in and sign-out pages."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from serving.console.render import base_url, page
from serving.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    ConsoleRefusal,
    SignInRequired,
    WriterDep,
    cookie_options,
    cookie_path,
    new_login_token,
    signed_in,
)

router = APIRouter()


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path inside the console (no open redirect to another site)."""
    base = base_url(request)
    if target and target.startswith(f"{base}/") and not target.startswith("//"):
        return target
    return f"{base}/"


def _login_form(request: Request, status_code: int = 200, message: str | None = None):
    token = new_login_token()
    response = page(
        request, "login.html", None, "login", status_code=status_code,
        login_token=token, next=request.query_params.get("next", ""), message=message,
    )  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, token, **cookie_options(request))
    return response


@router.get("/login")
async def login_form(request: Request):
    return _login_form(request)


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
):
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _login_form(request, 403, "the sign-in form expired; try again")
    if not api_key.strip():
        return _login_form(request, 422, "api_key: enter an API key")
    try:
        await signed_in(request, api_key.strip())
    except SignInRequired as exc:
        return _login_form(request, 401, str(exc))
    except ConsoleRefusal as exc:  # a key of another role, or over its rate
        return _login_form(request, exc.status, str(exc))
    response = RedirectResponse(_safe_next(request, next), status_code=303)
    response.set_cookie(COOKIE, api_key.strip(), **cookie_options(request))
    response.delete_cookie(LOGIN_COOKIE, path=cookie_path(request))
    return response


@router.post("/logout")
async def logout(request: Request, viewer: WriterDep):
    response = RedirectResponse(f"{base_url(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, path=cookie_path(request))
    return response
