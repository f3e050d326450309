"""One id per request: taken from a sane ``X-Request-ID`` header or generated, echoed back.

The id lands in ``request.state.request_id`` so that the error handlers can log it with a
traceback and return it in a 500 body; the client can then quote it when reporting a failure.
"""

from __future__ import annotations

import re
import uuid

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("ascii")
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope) -> str:
    """The id of the request in ``scope`` (a fresh one when the middleware did not run)."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return state["request_id"]


class RequestIdMiddleware:
    """Pure ASGI middleware: sets the request id and adds it to every response's headers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((value for name, value in scope["headers"] if name == _HEADER_KEY), None)
        if given is not None and _SANE.fullmatch(given):  # else: log forging
            scope.setdefault("state", {})["request_id"] = given.decode("ascii")
        header = (_HEADER_KEY, request_id_of(scope).encode("ascii"))

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
