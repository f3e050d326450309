"""Top-k with exclusions and tombstones over an index that cannot filter by itself.

The index is asked for more candidates than ``k`` (oversampling by the number of excluded ids and
by the share of tombstones), rejected candidates are dropped, and only the rows that still hold
fewer than ``k`` results are searched again with twice the width, until the index is exhausted.
For an exact index the result is exactly the filtered top-k.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# pick(width) -> (index with .search/.ntotal, tombstone mask by label or None)
Picker = Callable[[int], tuple[object, np.ndarray | None]]


def is_dead(dead: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which ``labels`` the boolean mask ``dead`` marks (labels past the mask and -1 are not)."""
    inside = (labels >= 0) & (labels < len(dead))
    return inside & dead[np.where(inside, labels, 0)]


def _accepted(found: np.ndarray, rows: np.ndarray, dead, exclude) -> np.ndarray:
    valid = found >= 0
    if dead is not None:
        valid &= ~is_dead(dead, found)
    if isinstance(exclude, np.ndarray):
        if len(exclude):
            valid &= ~np.isin(found, exclude)
    elif exclude is not None:
        for row, query in enumerate(rows):
            if len(exclude[query]):
                valid[row] &= ~np.isin(found[row], exclude[query])
    return valid


def filtered_search(
    pick: Picker,
    queries: np.ndarray,
    k: int,
    exclude: None | np.ndarray | list[np.ndarray],
    dead_share: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, labels) per query, skipping excluded labels and tombstones.

    Parameters
    ----------
    pick : callable
        ``pick(width)`` returns the FAISS index to search for ``width`` candidates and its
        tombstone mask (indexed by label) or None.
    queries : ndarray (b, dim) float32
    k : int
    exclude : None, ndarray of labels shared by all queries, or one ndarray per query
    dead_share : float
        Fraction of stored vectors that are tombstones (sets the first oversampling).

    Returns
    -------
    scores : ndarray (b, k) float32, -inf where a row has fewer results
    labels : ndarray (b, k) int64, -1 there
    """
    b = len(queries)
    if isinstance(exclude, list):
        n_excluded = max((len(row) for row in exclude), default=0)
    else:
        n_excluded = 0 if exclude is None else len(exclude)
    scores = np.full((b, k), -np.inf, dtype=np.float32)
    labels = np.full((b, k), -1, dtype=np.int64)
    want = math.ceil((k + n_excluded) * (1 + 2 * dead_share)) + (8 if dead_share else 0)
    pending = np.arange(b)
    while len(pending):
        index, dead = pick(want)
        total = index.ntotal
        width = min(want, total)
        if width == 0:
            break
        dist, found = index.search(queries[pending], width)
        valid = _accepted(found, pending, dead, exclude)
        cols = min(k, width)
        if valid[:, :cols].all():  # nothing rejected in the top k: the common, fast case
            scores[pending, :cols] = dist[:, :cols]
            labels[pending, :cols] = found[:, :cols]
        else:
            order = np.argsort(~valid, axis=1, kind="stable")[:, :k]  # accepted first, by rank
            keep = np.take_along_axis(valid, order, 1)
            scores[pending, :cols] = np.where(keep, np.take_along_axis(dist, order, 1), -np.inf)
            labels[pending, :cols] = np.where(keep, np.take_along_axis(found, order, 1), -1)
        short = valid.sum(axis=1) < k
        if width >= total or not short.any():
            break
        pending, want = pending[short], 2 * width  # widen only the rows that ran short
    return scores, labels
