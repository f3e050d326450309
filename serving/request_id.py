"""One id per request: taken from a sane ``X-Request-ID`` header or generated, echoed back.

The id lands in ``request.state.request_id`` so that the error handlers can log it with a
traceback and return it in a 500 body; the client can then quote it when reporting a failure.
Under Ray Serve the proxy sets the header on every request and echoes it on the answer, so the
app adds the header only to answers of requests that came without one (no duplicate header).
"""

from __future__ import annotations

import re
import uuid

from recsys.logs import request_id as log_request_id

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("ascii")
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope) -> str:
    """The id of the request in ``scope`` (a fresh one when the middleware did not run)."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return state["request_id"]


def id_headers(scope) -> dict[str, str]:
    """The ``X-Request-ID`` header an answer needs: none when the request brought its own."""
    request_id = request_id_of(scope)
    return {} if scope["state"].get("request_id_given") else {HEADER: request_id}


class RequestIdMiddleware:
    """Pure ASGI middleware: sets the request id and adds it to every response's headers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((value for name, value in scope["headers"] if name == _HEADER_KEY), None)
        state = scope.setdefault("state", {})
        if given is not None and _SANE.fullmatch(given):  # else: log forging
            state["request_id"] = given.decode("ascii")
            state["request_id_given"] = True
        headers = [(name.lower().encode("ascii"), value.encode("ascii"))
                   for name, value in id_headers(scope).items()]  # fmt: skip

        async def send_with_id(message):
            if headers and message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_KEY]
                message = {**message, "headers": [*kept, *headers]}
            await send(message)

        token = log_request_id.set(request_id_of(scope))
        try:  # log lines written while the request is handled carry its id (recsys.logs)
            await self.app(scope, receive, send_with_id)
        finally:
            log_request_id.reset(token)
