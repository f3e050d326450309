"""Prometheus metrics of the API process (served open at /metrics)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

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

from serving.activity_metrics import StoreActivityCollector

RECOMMENDATION_ROUTES = frozenset(
    {
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id:path}/similar",
        "/v1/recommendations/cross-sell",
    }
)
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

        self.recent = RecentTraffic()

    def watch_store(self, store) -> None:
        """Also report segment entries/exits and campaign sends, read from ``store`` at
        scrape time (``serving.activity_metrics``: they happen in other processes too)."""
        self.registry.register(StoreActivityCollector(store))

    def ingested(self, count: int) -> None:
        self.events_ingested.inc(count)
        self.recent.note_events(count)

    def set_model(self, version: str, kind: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, kind=kind).set(1)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RecentTraffic:
    """The last minutes of this process's traffic, for the console's overview: Prometheus
    counters hold totals since start, a rate needs a window. Thread-safe (sync routes run in
    worker threads); bounded memory."""

    def __init__(self, window_s: float = 300.0, max_samples: int = 50_000) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._answers: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        edge = now - self.window_s
        while self._events and self._events[0][0] < edge:
            self._events.popleft()
        while self._answers and self._answers[0][0] < edge:
            self._answers.popleft()

    def note_events(self, count: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._events.append((now, count))
            self._trim(now)

    def note_answer(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._answers.append((now, seconds))
            self._trim(now)

    def summary(self, now: float | None = None) -> dict[str, float | int | None]:
        """Events and recommendation answers in the last 60 s, and the answers' p99 over the
        window (None before any answer)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            events = sum(n for t, n in self._events if t >= now - 60)
            answers = [s for t, s in self._answers if t >= now - 60]
            latencies = sorted(s for _, s in self._answers)
        p99 = None
        if latencies:
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
        return {
            "events_per_minute": events,
            "recommendations_per_minute": len(answers),
            "recommendations_p99_ms": p99,
            "window_s": self.window_s,
        }


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
        elapsed = time.perf_counter() - started
        self.metrics.latency.labels(template, method).observe(elapsed)
        if template in RECOMMENDATION_ROUTES and status < 400:
            self.metrics.recent.note_answer(elapsed)
        if gone:  # not a server error: whatever was written (events) is committed
            self.metrics.disconnects.labels(template, method).inc()
            return
        self.metrics.responses.labels(template, method, str(status)).inc()
        if status >= 500:
            self.metrics.errors.labels(template).inc()
