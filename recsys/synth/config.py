"""Parameters of a synthetic shop, validated up front, and the seeding that makes it repeat."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from recsys.errors import InvalidInputError

DEFAULT_START = "2026-01-01"
USERS_PER_BLOCK = 8192
"""Users simulated together with one random stream; fixed, so results never depend on batching."""

MAX_SEGMENTS = 256
MAX_DAYS = 36_500
MAX_ITEMS = 10_000_000
MAX_SEGMENT_ITEM_CELLS = 50_000_000  # segments x items taste table (float64), ~400 MB at the cap

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# Random streams: every part of the shop draws from its own SeedSequence child.
STREAM_CATALOGUE = 0
STREAM_SEGMENTS = 1
STREAM_USERS = 2


class ShopConfigError(InvalidInputError):
    """A bad generator parameter; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field} {problem}")


def parse_start(value: str | date | datetime) -> datetime:
    """A start date/time as an aware UTC datetime; naive values are read as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ShopConfigError(
                "start",
                f"cannot be parsed from {text!r}; use an ISO-8601 date like 2026-01-01 "
                "or a date-time like 2026-01-01T08:00:00Z",
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class ShopConfig:
    """What to generate.

    Parameters
    ----------
    users, items : int
        Number of customers (>= 1) and catalogue items (>= 2).
    seed : int
        Non-negative seed; the same configuration and seed give identical files.
    events_per_user : float
        Target mean number of events per customer (>= 1). Every customer has at least one
        session, so very small targets are exceeded.
    segments : int
        Number of planted taste segments (1..256).
    start : str
        Start of the time span (ISO-8601, UTC); a fixed default keeps runs repeatable.
    days : float
        Length of the time span in days (> 0).
    """

    users: int
    items: int
    seed: int = 0
    events_per_user: float = 20.0
    segments: int = 8
    start: str = DEFAULT_START
    days: float = 90.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ShopConfigError`` naming the first bad parameter."""
        _check_int("users", self.users, minimum=1)
        _check_int("items", self.items, minimum=2, maximum=MAX_ITEMS)
        _check_int("seed", self.seed, minimum=0)
        _check_int("segments", self.segments, minimum=1, maximum=MAX_SEGMENTS)
        _check_number("events_per_user", self.events_per_user, minimum=1.0)
        _check_number("days", self.days, minimum=None)
        if not 0 < self.days <= MAX_DAYS:
            raise ShopConfigError("days", f"must be > 0 and <= {MAX_DAYS}, got {self.days}")
        if self.segments * self.items > MAX_SEGMENT_ITEM_CELLS:
            raise ShopConfigError(
                "segments",
                f"x items = {self.segments * self.items:,} exceeds "
                f"{MAX_SEGMENT_ITEM_CELLS:,}; use fewer segments for a catalogue this large",
            )
        start = parse_start(self.start)
        if start < _EARLIEST or start + timedelta(days=self.days) > _LATEST:
            raise ShopConfigError(
                "start", f"and days must keep the span within 1970..2200, got {self.start!r}"
            )

    @property
    def start_time(self) -> datetime:
        return parse_start(self.start)

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.users / USERS_PER_BLOCK)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["start"] = self.start_time.isoformat().replace("+00:00", "Z")
        return out


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ShopConfigError(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ShopConfigError(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ShopConfigError(name, f"must be <= {maximum:,}, got {value:,}")


def _check_number(name: str, value, minimum: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ShopConfigError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ShopConfigError(name, f"must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ShopConfigError(name, f"must be >= {minimum:g}, got {value}")


def rng_for(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """Generator for one stream (and block) of a seed, independent of every other one."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(stream, index)))
