"""FastAPI dependencies: the app's parts and API-key authentication with roles."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from recsys.ingest import EventIngestor
from recsys.privacy import DerivedDataScrubber
from recsys.segments.service import SegmentService
from recsys.store import ApiKeyRecord, Role, Store
from serving.metrics import ServiceMetrics
from serving.model_client import ModelClient
from serving.rate_limits import RateLimiter, rate_limit_settings
from serving.settings import Settings

KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds
# Declares the bearer scheme in the OpenAPI spec (the "Authorize" button at /docs); the header is
# parsed by _bearer below so that a missing key gets our own 401 message.
BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


@dataclass
class AppState:
    """What the routes share; one per app instance (tests build their own)."""

    settings: Settings
    store: Store
    model: ModelClient
    metrics: ServiceMetrics
    ingestor: EventIngestor = field(init=False)
    segments: SegmentService = field(init=False)
    scrubber: DerivedDataScrubber = field(init=False)
    limiter: RateLimiter = field(init=False)
    audiences: Any = field(default=None, init=False)  # AudienceFinder of the served version
    _keys: dict[str, tuple[float, ApiKeyRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ingestor = EventIngestor(self.store)
        self.segments = SegmentService(self.store)
        # Membership follows each committed batch (customers a crash left pending first).
        self.ingestor.subscribe("segments", self.segments.engine.on_events)
        self.scrubber = DerivedDataScrubber(
            self.store,
            tracking_uri=_registry_in_use(self.settings),
            cache_dirs=[Path(self.settings.var_dir) / "models"],
        )
        self.limiter = RateLimiter(self.store, rate_limit_settings(), self.metrics.registry)

    async def session_events(self, user_id: str) -> list[dict]:
        """The customer's latest stored events, as the engine takes them for a live session."""
        if self.settings.session_events <= 0:
            return []
        events = await run_in_threadpool(
            self.store.events.recent, user_id, self.settings.session_events
        )
        return [
            {"item_id": e["item_id"], "timestamp": e["timestamp"].timestamp(),
             "event_type": e["event_type"]}
            for e in events if e["item_id"]
        ]  # fmt: skip

    def cached_key(self, plaintext: str) -> ApiKeyRecord | None:
        """The key's record when it was looked up less than KEY_CACHE_SECONDS ago."""
        cached = self._keys.get(plaintext)
        if cached and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        return None

    def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        """Key lookup with a short cache so every request does not cost a database read."""
        cached = self.cached_key(plaintext)
        if cached is not None:
            return cached
        now = time.monotonic()
        record = self.store.keys.authenticate(plaintext)
        if record is None:
            self._keys.pop(plaintext, None)
        else:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[plaintext] = (now, record)
        return record


def _registry_in_use(settings: Settings) -> str | None:
    """The MLflow URI whose versions erasure scrubs: the served registry, or a local one that
    exists (never created here just to find it empty)."""
    uri = settings.mlflow_tracking_uri
    if settings.model_uri.startswith("models:/"):
        return uri
    if uri.startswith("sqlite:///"):
        return uri if Path(uri.removeprefix("sqlite:///")).exists() else None
    return uri


async def get_state(request: Request) -> AppState:  # async: no threadpool hop
    return request.app.state.recsys


StateDep = Annotated[AppState, Depends(get_state)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def require(*roles: Role):
    """Dependency factory: the caller's key must satisfy one of ``roles`` (admin always does)."""
    needed = " or ".join(r.value for r in roles)
    kind = "ingest" if Role.INGEST in roles else "read"  # separate buckets, separate rates

    async def check(
        request: Request,
        state: StateDep,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> ApiKeyRecord:
        # On the event loop when the key is cached (nearly always); the database read of a
        # cache miss goes to a worker thread.
        token = _bearer(request)
        record = state.cached_key(token) or await run_in_threadpool(state.authenticate, token)
        if record is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not record.role.satisfies(*roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this route needs a key with role {needed}; this key has role {record.role.value}",
            )
        decision = await state.limiter.check(record, kind)
        if not decision.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"this key is over its {kind} rate of {decision.rate:g} requests per second; "
                f"retry after {decision.retry_after:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(decision.retry_after)))},
            )
        return record

    return Depends(check)


ReadKey = Annotated[ApiKeyRecord, require(Role.READ, Role.MARKETER)]
MarketerKey = Annotated[ApiKeyRecord, require(Role.MARKETER)]
IngestKey = Annotated[ApiKeyRecord, require(Role.INGEST)]
AdminKey = Annotated[ApiKeyRecord, require(Role.ADMIN)]
