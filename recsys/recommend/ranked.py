"""The engine's answers as ranked rows: top-``k`` of scored candidates, backfilled with the most
popular eligible items, described from the live catalogue.

Functions of a ``RecommendationEngine`` (its catalogue, popularity prior and backfill order, all
of which grow with new items: ``recsys.recommend.live_catalogue``).
"""

from __future__ import annotations

import numpy as np

from recsys.errors import RecsysError
from recsys.recommend.filters import Eligible
from recsys.recommend.ranking import first_eligible, top_k
from recsys.recommend.requests import Answer


def rank(engine, candidates, scores, eligible: Eligible, k: int):
    """Top-``k`` of eligible ``candidates`` by score, backfilled with popular items."""
    chosen, values = top_k(np.asarray(candidates, np.int64), np.asarray(scores), k)
    values = values.astype(np.float64)
    if len(chosen) < k:
        extra, extra_scores = backfill(engine, chosen, eligible, k - len(chosen))
        floor = float(values.min()) if len(values) else 0.0
        chosen = np.concatenate([chosen, extra])
        values = np.concatenate([values, np.minimum(extra_scores, floor) - 1e-6])
    return chosen, values


def rank_catalogue(engine, scores: np.ndarray, eligible: Eligible, k: int):
    """:func:`rank` over the whole catalogue (``scores`` has one entry per item; modified)."""
    scores[~eligible.catalogue.mask] = -np.inf
    scores[eligible.excluded] = -np.inf
    return rank(engine, np.arange(len(scores)), scores, eligible, k)


def backfill(engine, taken: np.ndarray, eligible: Eligible, k: int):
    """The ``k`` most popular eligible items not in ``taken``, with their popularity prior."""
    catalogue = eligible.catalogue
    small = catalogue.count <= engine.exact_scoring_limit
    order = catalogue.ordered() if small else engine.popular_order
    extra = first_eligible(order, eligible, taken, k)
    return extra, engine.prior[extra].astype(np.float64)


def answer_of(engine, chosen, scores, strategy: str, **meta) -> Answer:
    """The answer listing ``chosen`` items with their scores and catalogue fields."""
    catalogue = engine.catalogue
    rows = [
        {"item_id": str(engine.item_ids[i]), "score": round(float(s), 6), **catalogue.describe(i)}
        for i, s in zip(chosen, scores, strict=True)
    ]
    return Answer(rows, strategy, engine.model_version, {k: v for k, v in meta.items() if v})


def raise_first(results: list):
    """``results`` unchanged when none is an error; otherwise the first error is raised."""
    for result in results:
        if isinstance(result, RecsysError):
            raise result
    return results
