"""Per-key rate limits: a token bucket per (key, kind) in Redis, shared by every ingress replica.

Why Redis and not the store: the check runs on every request. In Redis it is one round trip to
an atomic Lua script (well under a millisecond, no lock held beyond it); in the store it would
be a write transaction per request, and on SQLite every replica would queue on its one write
lock. The bucket state is small, expires by itself, and losing it (a Redis restart) only
refills the buckets. When Redis does not answer, each replica falls back to its own in-process
buckets (limits then hold per replica, not in total), logs it, counts it in
``recsys_rate_limit_fallbacks_total`` and tries Redis again after :data:`REDIS_RETRY_SECONDS`.

Reads and ingestion have separate buckets and rates: a key's own rate
(``recsys keys create --rate 100/s --ingest-rate 1000/s``) or its role's default.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from recsys.settings import ENV_PREFIX, load_settings
from recsys.store import ApiKeyRecord, Store
from recsys.store.key_rates import KeyRateStore, parse_rate

logger = logging.getLogger(__name__)

RATE_CACHE_SECONDS = 5.0  # a changed key rate applies within this many seconds
REDIS_RETRY_SECONDS = 5.0
BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RateLimitSettings(BaseSettings):
    """``RECSYS_REDIS_URL``, ``RECSYS_RATE_LIMITS`` (on/off) and the role defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    rate_limits: bool = True
    rate_read: dict[str, str] = Field(
        default={"admin": "200/s", "marketer": "200/s", "read": "500/s", "ingest": "200/s"},
        description="Default read rate per role.",
    )
    rate_ingest: str = Field(default="1000/s", description="Default ingestion rate of any key.")


@dataclass(frozen=True)
class Decision:
    """Whether a request may pass; ``retry_after`` seconds when not."""

    allowed: bool
    rate: float
    retry_after: float = 0.0


class _LocalBuckets:
    """In-process twin of the Redis script (used while Redis is unreachable)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: float) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, ts = self._state.get(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - ts) * rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            self._state[key] = (tokens - 1 if tokens >= 1 else tokens, now)
            if len(self._state) > 100_000:
                self._state.clear()
        return wait


class RateLimiter:
    """Token buckets per (API key, kind); ``kind`` is ``read`` or ``ingest``.

    Parameters
    ----------
    store : Store
        Where the per-key rates are (``api_key_rates``).
    settings : RateLimitSettings
    registry : prometheus_client.CollectorRegistry, optional
        Where ``recsys_rate_limited_total`` is counted (the app's ``/metrics``).
    """

    def __init__(self, store: Store, settings: RateLimitSettings, registry=None) -> None:
        from prometheus_client import Counter

        self.settings = settings
        self.rates = KeyRateStore(store.engine)
        # Key ids restart at 1 in every database: the store's URL keeps their buckets apart.
        self._space = hashlib.sha256(store.url.encode()).hexdigest()[:12]
        self._defaults = {
            "read": {role: parse_rate(v, f"rate_read.{role}") for role, v in
                     settings.rate_read.items()},
            "ingest": parse_rate(settings.rate_ingest, "rate_ingest"),
        }  # fmt: skip
        self._own: dict[int, tuple[float, object]] = {}
        self._local = _LocalBuckets()
        self._redis = None
        self._script = None
        self._loop = None  # the redis client's connections belong to one event loop
        self._redis_down_until = 0.0
        kw = {"registry": registry} if registry is not None else {}
        self.limited = Counter(
            "recsys_rate_limited_total", "Requests refused with 429 by key role and kind.",
            ["role", "kind"], **kw,
        )  # fmt: skip
        self.fallbacks = Counter(
            "recsys_rate_limit_fallbacks_total",
            "Rate checks done in-process because Redis did not answer.", **kw,
        )  # fmt: skip

    def rate_of(self, key: ApiKeyRecord, kind: str, own) -> float:
        """Requests per second allowed for ``key`` on ``kind`` routes."""
        mine = own.ingest if kind == "ingest" else own.read
        if mine:
            return float(mine)
        if kind == "ingest":
            return self._defaults["ingest"]
        return self._defaults["read"].get(key.role.value, self._defaults["read"].get("read", 100))

    async def _own_rates(self, key: ApiKeyRecord):
        cached = self._own.get(key.id)
        if cached and time.monotonic() - cached[0] < RATE_CACHE_SECONDS:
            return cached[1]
        own = await run_in_threadpool(self.rates.get, key.id)
        self._own[key.id] = (time.monotonic(), own)
        return own

    async def check(self, key: ApiKeyRecord, kind: str) -> Decision:
        """Take one token from the key's ``kind`` bucket."""
        if not self.settings.rate_limits:
            return Decision(True, math.inf)
        rate = self.rate_of(key, kind, await self._own_rates(key))
        burst = max(1.0, rate)  # one second's worth
        bucket = f"recsys:rl:{self._space}:{key.id}:{kind}"
        wait = await self._take_redis(bucket, rate, burst)
        if wait is None:
            wait = self._local.take(bucket, rate, burst)
        if wait > 0:
            self.limited.labels(key.role.value, kind).inc()
            return Decision(False, rate, wait)
        return Decision(True, rate)

    async def _take_redis(self, bucket: str, rate: float, burst: float) -> float | None:
        if time.monotonic() < self._redis_down_until:
            self.fallbacks.inc()
            return None
        try:
            if self._script is None or self._loop is not asyncio.get_running_loop():
                import redis.asyncio as aioredis

                self._loop = asyncio.get_running_loop()
                self._redis = aioredis.Redis.from_url(
                    self.settings.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2
                )
                self._script = self._redis.register_script(BUCKET)
            return float(await self._script(keys=[bucket], args=[rate, burst]))
        except Exception as exc:  # any Redis failure: limit in-process instead of failing
            logger.warning("rate limits: Redis at %s does not answer (%s); limiting per "
                           "replica for %.0f s", self.settings.redis_url, exc,
                           REDIS_RETRY_SECONDS)  # fmt: skip
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            self._script = self._redis = None
            self.fallbacks.inc()
            return None


def rate_limit_settings() -> RateLimitSettings:
    """The rate-limit settings from the environment."""
    return load_settings(RateLimitSettings)
