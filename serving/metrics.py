"""Prometheus metrics of the API process (served open at /metrics)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import ClientDisconnect
from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """One registry per app instance, so tests and several apps in a process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "recsys_request_seconds",
            "Request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "recsys_responses_total",
            "Responses by route template and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "recsys_errors_total",
            "Unhandled errors (5xx) by route.",
            ["route"],
            registry=self.registry,
        )
        self.disconnects = Counter(
            "recsys_http_client_disconnects_total",
            "Requests whose client went away (timed out or closed) before the answer was sent.",
            ["route", "method"],
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "recsys_events_ingested_total", "Events committed to the store.", registry=self.registry
        )
        self.events_rejected = Counter(
            "recsys_events_rejected_total", "Events rejected by validation.", registry=self.registry
        )
        self.events_duplicate = Counter(
            "recsys_events_duplicate_total",
            "Events skipped as re-deliveries (same event_id).",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "recsys_model_info",
            "The model version being served (value 1).",
            ["version", "kind"],
            registry=self.registry,
        )

    def set_model(self, version: str, kind: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, kind=kind).set(1)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every request under its route template (``/v1/users/{user_id}/...``), not its path.

    Plain ASGI (no BaseHTTPMiddleware): it adds no task or stream hop to the request.
    """

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        finished = gone = False  # gone: the client left before the whole answer was sent

        async def receive_and_watch():
            nonlocal gone
            message = await receive()
            gone = gone or (message["type"] == "http.disconnect" and not finished)
            return message

        async def send_and_record(message):
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_record)
        except ClientDisconnect:  # nobody is left to answer; not a server error
            gone = not finished
        except asyncio.CancelledError:  # how Ray's proxy tells a replica its client went away
            gone = not finished
            raise
        finally:
            self._record(scope, started, status, gone)

    def _record(self, scope, started: float, status: int, gone: bool) -> None:
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        method = scope.get("method", "")
        self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
        if gone:  # not a server error: whatever was written (events) is committed
            self.metrics.disconnects.labels(template, method).inc()
            return
        self.metrics.responses.labels(template, method, str(status)).inc()
        if status >= 500:
            self.metrics.errors.labels(template).inc()
