"""Read-side summaries of the segments, for the console and notebooks: the customers on the RFM
score grid, the stored clusters of some customers, and a 2-D projection of user embeddings.

Nothing here decides membership: the grid names each cell's groups with
:func:`recsys.segments.rfm.group_of` and the clusters are the ones the refresh job stored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import func, select

from recsys.bundle import ServingBundle
from recsys.segments.clusters import user_embeddings
from recsys.segments.rfm import group_of
from recsys.store import Store, read_session
from recsys.store.profile_aggregates import CustomerAggregate

SCORES = (1, 2, 3, 4, 5)


def rfm_score_counts(store: Store) -> dict[tuple[int, int, int], int]:
    """Customers per ``(R, F, M)`` score triple (scored customers only): one grouped query."""
    agg = CustomerAggregate
    stmt = (
        select(agg.rfm_r, agg.rfm_f, agg.rfm_m, func.count())
        .where(agg.rfm_r.is_not(None), agg.rfm_f.is_not(None), agg.rfm_m.is_not(None))
        .group_by(agg.rfm_r, agg.rfm_f, agg.rfm_m)
    )
    with read_session(store.engine) as session:
        return {(int(r), int(f), int(m)): int(n) for r, f, m, n in session.execute(stmt)}


def rfm_grid(counts: dict[tuple[int, int, int], int]) -> dict[str, Any]:
    """The R x F grid of :func:`rfm_score_counts`: ``rows`` for R = 5..1, each with ``cells``
    for F = 1..5 holding ``count`` and ``groups`` (named group -> customers, largest first; a
    cell can hold several groups because the group also depends on M), plus ``groups`` (every
    named group's total), ``max`` and ``total``."""
    cells: dict[tuple[int, int], Counter] = {(r, f): Counter() for r in SCORES for f in SCORES}
    totals: Counter = Counter()
    for (r, f, m), n in counts.items():
        group = group_of(r, f, m)
        if (r, f) in cells and group is not None:
            cells[r, f][group] += n
            totals[group] += n
    rows = [
        {
            "r": r,
            "cells": [
                {"f": f, "count": sum(cells[r, f].values()), "groups": cells[r, f].most_common()}
                for f in SCORES
            ],
        }
        for r in reversed(SCORES)
    ]
    return {
        "rows": rows,
        "groups": totals.most_common(),
        "max": max((c["count"] for row in rows for c in row["cells"]), default=0),
        "total": sum(totals.values()),
    }


def stored_clusters(store: Store, user_ids: list[str]) -> dict[str, int]:
    """The stored cluster of each of ``user_ids`` that has one (queried in chunks)."""
    agg, out = CustomerAggregate, {}
    with read_session(store.engine) as session:
        for start in range(0, len(user_ids), 500):
            stmt = select(agg.user_id, agg.cluster).where(
                agg.user_id.in_(user_ids[start : start + 500]), agg.cluster.is_not(None)
            )
            out.update({u: int(c) for u, c in session.execute(stmt)})
    return out


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of ``vectors`` (rows), by SVD of the centred matrix;
    each axis's sign is fixed (largest loading positive) so that reruns draw the same picture."""
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) == 0:
        return np.zeros((0, 2))
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    out = x @ axes.T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def embedding_sample(
    bundle: ServingBundle, n: int = 2000, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Up to ``n`` users with a trained vector (a fixed random sample) and their unit user
    embeddings projected to 2-D with :func:`project_2d`: ``(user ids, (n, 2) array)``."""
    ids, vectors = user_embeddings(bundle)
    if len(ids) > n:
        keep = np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))
        ids, vectors = ids[keep], vectors[keep]
    return [str(u) for u in ids], project_2d(vectors)
