"""Sharded membership evaluation: the expensive pass of the segment refresh split over
contiguous user-id ranges, so that several processes (Ray tasks on a cluster, see
``serving/segment_shards.py``) evaluate parts of the same store at once.

The ranges partition the whole user-id key space (the first is open below, the last open
above), so a customer whose profile appears during the refresh still falls in exactly one
shard. Each shard writes its own memberships and entry/exit events in transactions of
:data:`recsys.segments.engine.CHUNK` customers, as the unsharded pass does; the result is the
same. On PostgreSQL the shards' transactions run concurrently (they touch different rows); on
SQLite every write transaction holds the one database lock for its whole chunk, so shards
take turns and sharding gives no speed-up there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from recsys.errors import InvalidInputError
from recsys.segments.engine import CHUNK, SegmentEngine
from recsys.store import Store, read_session
from recsys.store.tables import UserProfile


@dataclass(frozen=True)
class Shard:
    """Customers with ``after < user_id <= upto`` (``None``: unbounded on that side)."""

    index: int
    after: str | None
    upto: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Runs shards somewhere and yields each one's result (see evaluate_shard) as it finishes.
ShardRunner = Callable[[list[Shard]], Iterable[dict[str, Any]]]


def plan_shards(store: Store, shards: int) -> list[Shard]:
    """Split the customers with a profile into ``shards`` ranges of about equal size.

    Parameters
    ----------
    store : Store
    shards : int
        At least 1; fewer ranges come back when there are fewer customers than shards.

    Returns
    -------
    list of Shard
        Contiguous, in user-id order, covering every possible user id.
    """
    if shards < 1:
        raise InvalidInputError(f"shards: must be at least 1, got {shards}")
    with read_session(store.engine) as session:
        total = int(session.scalar(select(func.count()).select_from(UserProfile)) or 0)
        bounds: list[str] = []
        parts = min(shards, max(total, 1))
        for k in range(1, parts):
            # the last user id of shard k-1; an index-only scan to that offset
            stmt = (
                select(UserProfile.user_id)
                .order_by(UserProfile.user_id)
                .offset(k * total // parts - 1)
                .limit(1)
            )
            bound = session.scalar(stmt)
            if bound is not None and (not bounds or bound > bounds[-1]):
                bounds.append(bound)
    edges: list[str | None] = [None, *bounds, None]
    return [Shard(i, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def shard_customers(store: Store, shard: Shard, chunk: int = CHUNK) -> Iterator[list[str]]:
    """The customer ids of ``shard`` with a profile, in chunks (keyset order)."""
    after = shard.after
    while True:
        stmt = select(UserProfile.user_id)
        if after is not None:
            stmt = stmt.where(UserProfile.user_id > after)
        if shard.upto is not None:
            stmt = stmt.where(UserProfile.user_id <= shard.upto)
        with read_session(store.engine) as session:
            ids = list(session.scalars(stmt.order_by(UserProfile.user_id).limit(chunk)))
        if not ids:
            return
        yield ids
        after = ids[-1]


def evaluate_shard(
    store: Store,
    shard: Shard,
    *,
    cause: str = "refresh",
    engine: SegmentEngine | None = None,
) -> dict[str, Any]:
    """Re-evaluate every segment for the customers of ``shard``, writing their entry/exit events.

    Parameters
    ----------
    store : Store
        The same store every shard of a refresh uses.
    shard : Shard
    cause : str
        Recorded on the segment events.
    engine : SegmentEngine, optional
        Default: a new one over ``store`` (one per process).

    Returns
    -------
    dict
        ``shard`` (its index), ``after``, ``upto``, ``customers``, ``changes`` (entries + exits
        written) and ``seconds``.
    """
    engine = engine or SegmentEngine(store)
    started = time.perf_counter()
    customers = changes = 0
    for number, ids in enumerate(shard_customers(store, shard)):
        engine.keep_statistics(number)
        changes += engine.evaluate(ids, cause=cause)
        customers += len(ids)
    return {
        "shard": shard.index,
        "after": shard.after,
        "upto": shard.upto,
        "customers": customers,
        "changes": changes,
        "seconds": round(time.perf_counter() - started, 3),
    }


def serial_runner(store: Store, engine: SegmentEngine | None = None) -> ShardRunner:
    """A :data:`ShardRunner` that evaluates the shards one after another in this process."""

    def run(shards: list[Shard]) -> Iterator[dict[str, Any]]:
        for shard in shards:
            yield evaluate_shard(store, shard, engine=engine)

    return run
