"""Ranking helpers of the engine: deterministic top-k and popular backfill."""

from __future__ import annotations

import numpy as np

from recsys.recommend.filters import Eligible

BACKFILL_CHUNK = 1024


def top_k(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best finite (candidates, scores): score descending, then index ascending.

    A partial selection first keeps every candidate tied with the k-th score, so the result is
    exactly that of a full sort, at linear cost on long candidate lists.
    """
    finite = np.isfinite(scores)
    if not finite.all():
        candidates, scores = candidates[finite], scores[finite]
    if len(scores) > 4 * k + 64:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        candidates, scores = candidates[keep], scores[keep]
    order = np.lexsort((candidates, -scores))[:k]
    return candidates[order], scores[order]


def first_eligible(source: np.ndarray, eligible: Eligible, taken: np.ndarray, k: int):
    """The first ``k`` items of ``source`` (best first) that are eligible and not ``taken``.

    Walks ``source`` in growing chunks, so a broad filter touches only its head.
    """
    found, need, start, chunk = [], k, 0, BACKFILL_CHUNK
    while need > 0 and start < len(source):
        block = source[start : start + chunk]
        ok = eligible(block)
        if len(taken):
            ok &= ~np.isin(block, taken, kind="sort")
        found.append(block[ok][:need])
        need -= len(found[-1])
        start, chunk = start + chunk, 4 * chunk
    return np.concatenate(found) if found else np.zeros(0, np.int64)
