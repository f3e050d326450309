"""Ray tasks for ``recsys segments refresh --shards N``: each task evaluates one user-id range of
the store (:func:`recsys.segments.shards.evaluate_shard`) on whichever node of the cluster has
a free CPU, so a bigger cluster finishes the membership pass sooner.

Every task opens the store itself from its URL, so the store must be reachable from every node
(PostgreSQL for a multi-node cluster; a SQLite file works only when all nodes share the machine,
and its single write lock serialises the shards). A task that dies is retried by Ray: evaluating
a range again writes only the changes not yet committed, so a retry duplicates no event.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from sqlalchemy.engine import make_url

from recsys.errors import InvalidInputError
from recsys.segments.shards import Shard, ShardRunner, evaluate_shard
from recsys.store import Store

logger = logging.getLogger(__name__)


@ray.remote(max_retries=3)
def _evaluate_shard(database_url: str, shard: Shard) -> dict[str, Any]:
    store = Store.open(database_url)
    try:
        result = evaluate_shard(store, shard)
    finally:
        store.close()
    node = ray.get_runtime_context().get_node_id()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {**result, "node": node, "worker_peak_rss_mib": round(peak)}


def ray_runner(
    database_url: str, *, address: str | None = None, num_cpus: float = 1.0
) -> ShardRunner:
    """A :data:`recsys.segments.shards.ShardRunner` running each shard as a Ray task.

    Parameters
    ----------
    database_url : str
        The store every task opens (reachable from every node).
    address : str, optional
        Ray cluster to join (``host:port`` of the head's GCS). Default: ``RAY_ADDRESS`` (set
        inside a Ray job), else a Ray instance started on this machine for the run.
    num_cpus : float
        CPUs each task reserves: with 1, a node runs as many shards at once as it has CPUs.
    """
    database_url = _for_every_worker(database_url)

    def run(shards: list[Shard]) -> Iterator[dict[str, Any]]:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, logging_level=logging.WARNING)
        try:
            # SPREAD: shards go to different nodes before doubling up on one
            task = _evaluate_shard.options(num_cpus=num_cpus, scheduling_strategy="SPREAD")
            pending = [task.remote(database_url, shard) for shard in shards]
            logger.info("segment refresh: %d shard task(s) submitted", len(pending))
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            if started_here:
                ray.shutdown()

    return run


def _for_every_worker(database_url: str) -> str:
    """The URL with a relative SQLite path made absolute: Ray workers run in other folders."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return database_url
    if not url.database or url.database == ":memory:":
        raise InvalidInputError(
            "database_url: an in-memory SQLite store cannot be shared by shard tasks; "
            "use a SQLite file or PostgreSQL"
        )
    path = Path(url.database)
    if path.is_absolute():
        return database_url
    return url.set(database=str(path.resolve())).render_as_string(hide_password=False)
