"""The batch job behind ``recsys segments refresh``: RFM edges and scores, the embedding clusters
of the served model (when a bundle is given), then every segment's membership (writing the
entry/exit events the real-time path missed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select, update

from recsys.bundle import ServingBundle
from recsys.segments import rfm
from recsys.segments.clusters import refresh_clusters
from recsys.segments.engine import SegmentEngine
from recsys.segments.service import SegmentService
from recsys.segments.shards import ShardRunner, plan_shards, serial_runner
from recsys.store import Store, read_session, write_session
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.tables import UserProfile

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def score_rfm(store: Store, now: datetime) -> dict[str, Any]:
    """Score every customer with a purchase by quintiles (ties by rank), store the scores and
    record the edges the real-time path applies; returns the edges."""
    stmt = (
        select(
            UserProfile.user_id,
            CustomerAggregate.last_purchase_at,
            UserProfile.purchase_count,
            UserProfile.revenue,
        )
        .join(CustomerAggregate, CustomerAggregate.user_id == UserProfile.user_id)
        .where(CustomerAggregate.last_purchase_at.is_not(None))
        .order_by(UserProfile.user_id)
    )
    with read_session(store.engine) as session:
        rows = session.execute(stmt).all()
    if not rows:
        return {}
    users = [r[0] for r in rows]
    last = np.array([r[1].timestamp() for r in rows])
    scores, cut = rfm.batch_scores(
        last,
        np.array([r[2] for r in rows]),
        np.array([r[3] or 0.0 for r in rows]),
        now,
    )
    table = CustomerAggregate.__table__
    stmt = (
        update(table)
        .where(table.c.user_id == bindparam("uid"))
        .values(rfm_r=bindparam("r"), rfm_f=bindparam("f"), rfm_m=bindparam("m"))
    )
    params = [
        {"uid": u, "r": int(s[0]), "f": int(s[1]), "m": int(s[2])}
        for u, s in zip(users, scores, strict=True)
    ]
    with write_session(store.engine) as session:
        for start in range(0, len(params), 5000):
            session.execute(stmt, params[start : start + 5000])
        store.segments.put_state(rfm.STATE_NAME, cut, session)
    return cut


def refresh(
    store: Store,
    *,
    engine: SegmentEngine | None = None,
    progress: Progress | None = None,
    bundle: ServingBundle | None = None,
    model_version: str = "",
    k: int | None = None,
    device: str = "auto",
    shards: int = 1,
    runner: ShardRunner | None = None,
) -> dict[str, Any]:
    """Recompute RFM, cluster the users of ``bundle`` (when given), install the built-in RFM
    groups and re-evaluate every segment for every customer.

    Parameters
    ----------
    store : Store
    engine : SegmentEngine, optional
    progress : callable, optional
        Called with ``(stage, done, total)``.
    bundle : ServingBundle, optional
        The served model; its user embeddings are clustered (``k=None``: k by silhouette).
    model_version, k, device
        Recorded with the clusters / passed to :func:`refresh_clusters`.
    shards : int
        Split the membership pass over this many user-id ranges
        (:func:`recsys.segments.shards.plan_shards`), after RFM and clusters ran once.
    runner : callable, optional
        Runs the shards (e.g. as Ray tasks); default: one after another in this process.

    Returns
    -------
    dict
        ``customers``, ``rfm_scored``, ``clusters`` (or ``None``), ``changes`` (entries + exits
        written), ``seconds`` per stage and, when sharded, ``shards`` (each shard's result).
    """
    started = time.perf_counter()
    engine = engine or SegmentEngine(store)
    service = SegmentService(store, engine)
    timings: dict[str, float] = {}
    cut = score_rfm(store, engine.clock())
    timings["rfm"] = time.perf_counter() - started
    clusters = None
    if bundle is not None:
        mark = time.perf_counter()
        clusters = refresh_clusters(store, bundle, k=k, device=device, model_version=model_version)
        timings["clusters"] = time.perf_counter() - mark
    service.install_rfm_groups(evaluate=False)  # the pass below fills them
    engine.invalidate()
    with read_session(store.engine) as session:
        total = int(session.scalar(select(func.count()).select_from(UserProfile)) or 0)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("memberships", done, total)

    mark = time.perf_counter()
    results: list[dict[str, Any]] | None = None
    if shards > 1 or runner is not None:
        results = []
        for result in (runner or serial_runner(store, engine))(plan_shards(store, shards)):
            results.append(result)
            step(result["customers"])
        results.sort(key=lambda r: r["shard"])
        changes = sum(r["changes"] for r in results)
    else:
        changes = engine.evaluate_all(cause="refresh", progress=step)
    timings["memberships"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    logger.info("segments refreshed: %d customers, %d changes", total, changes)
    summary = {
        "customers": total,
        "rfm_scored": int(cut.get("customers", 0)) if cut else 0,
        "clusters": clusters,
        "changes": changes,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    if results is not None:
        summary["shards"] = results
    return summary
