"""Fit-time choice of the default model's recency and blend parameters on a validation split.

1. carve a validation split from the training data (``tuning.validation_split``) and fit every
   component on its inner part;
2. retrieval: choose the query's user weight and recency decay for the embedding path alone;
3. blend: with that query, choose the histories' recency decay and the component weights; keep
   the blend only when it clearly beats its single-component special cases (popularity, EASE,
   the retrieval path alone), else use the best of those;
4. cross-sell: on baskets (sessions, or each validation user's held-out items) with one item held
   out, choose the co-purchase / embedding / popularity weights by HitRate@10;
5. complements and intent shifts: ``recsys.models.complement_search`` (what the validation users
   bought later, and NDCG@20 after the intent of their latest events).

Coordinate search over small grids, moving only on gains beyond the noise (paired standard
errors over validation users / baskets); nothing here sees the test split.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recsys.models import complement_search
from recsys.models.covisit import has_sessions
from recsys.models.tuning import (
    ValidationSplit,
    Validator,
    coordinate_search,
    significant_gain,
    validation_split,
)
from recsys.models.weighting import EventWeighting

logger = logging.getLogger(__name__)

MIN_VALIDATION_USERS = 10
CACHE_FLOATS = 100_000_000  # cache validation component scores up to this size
MAX_BASKETS = 5000
CROSS_SELL_K = 10

RETRIEVAL_GRID = {
    "user_weight": [0.0, 0.25, 0.5, 1.0, 2.0],
    "query_tau": [0.5, 1.0, 2.0, 4.0, 8.0, 32.0],
    "half_life_days": [None, 1.0, 7.0, 30.0],
}
MOVE_Z = 1.0  # a search move must gain this many standard errors (paired, per user)
BASELINE_Z = 2.0  # the blend must beat its single-component special cases by this much
BLEND_GRID = {
    "w_twotower": [0.0, 1.0],
    "history_tau": [1.0, 2.0, 4.0, 8.0, 16.0, 64.0],
    "w_ease": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
    "w_covisit": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
    "w_pop": [0.0, 0.05, 0.1, 0.25, 0.5, 1.0],
}
NO_BLEND = {"w_twotower": 0.0, "w_ease": 0.0, "w_covisit": 0.0, "w_pop": 0.0}
BLEND_FALLBACKS = {
    "pop": NO_BLEND | {"w_pop": 1.0},
    "ease": NO_BLEND | {"w_ease": 1.0},
    "twotower": NO_BLEND | {"w_twotower": 1.0},  # the retrieval path alone
}
CROSS_FALLBACKS = {
    "pop": {
        "cross_covisit": 0.0,
        "cross_embedding": 0.0,
        "cross_pop": 1.0,
        "cross_half_life_days": None,
    }
}
CROSS_GRID = {
    "cross_half_life_days": [None, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0],
    "cross_covisit": [0.0, 0.5, 1.0, 2.0],
    "cross_embedding": [0.0, 0.1, 0.25, 0.5, 1.0],
    "cross_pop": [0.0, 0.05, 0.1, 0.2, 0.5, 1.0],
}


def _keep_if_better(objective, params: dict, fallbacks: dict, has_ease: bool, what: str):
    """The searched ``params``, unless the best of its simpler special cases is not clearly
    (``BASELINE_Z`` standard errors) worse on validation: then that one (Occam's razor)."""
    found = objective(params)
    best_name, best_values = None, None
    for name, override in fallbacks.items():
        if name == "ease" and not has_ease:
            continue
        values = objective(params | override)
        if best_values is None or values.mean() > best_values.mean():
            best_name, best_values = name, values
    if best_name is None or significant_gain(found, best_values, BASELINE_Z):
        return params, None
    logger.info("search: the %s is not clearly better than plain %s on validation; using %s",
                what, best_name, best_name)  # fmt: skip
    return params | fallbacks[best_name], best_name


def configure(scorer, model, params: dict) -> None:
    """Point ``scorer`` at ``params`` (weights, decays) and drop its cached histories."""
    config = model.scorer_config(params, scorer.scales)
    scorer.config = config
    scorer.user_weight = float(config["user_weight"])
    scorer.query_weighting = EventWeighting(**config["query_weighting"])
    scorer.history_weighting = EventWeighting(**config["history_weighting"])
    scorer.weights = dict(config["blend_weights"])
    if scorer.ease is None:
        scorer.weights["ease"] = 0.0
    scorer.cross_weights = dict(config["cross_sell_weights"])
    scorer.cross_prior = scorer._cross_prior(config["cross_sell_prior"])
    scorer._user_matrices = None


def search_parameters(model, train, items, users, params: dict, events=None):
    """(best ``params``, best complement parameters, a report) for ``model`` on a validation
    split of ``train`` (``events``: its raw events, or None)."""
    complements = dict(model.complement_params)
    try:
        split = validation_split(train, model.validation_users, model.seed)
    except ValueError as exc:
        logger.warning("default model: no validation split (%s); keeping the defaults", exc)
        return params, complements, {"skipped": str(exc)}
    if len(split) < MIN_VALIDATION_USERS:
        logger.warning("default model: %d validation users; keeping the defaults", len(split))
        return params, complements, {"skipped": f"only {len(split)} validation users"}
    scorer = model.build(split.inner, items, users, params)
    validator = Validator(split)

    def retrieval(p: dict) -> np.ndarray:
        configure(scorer, model, p)
        return validator.ndcg(lambda rows, u: scorer.retrieval_scores(u))

    params, retrieval_ndcg, trials = coordinate_search(
        retrieval, params, RETRIEVAL_GRID, min_z=MOVE_Z
    )
    configure(scorer, model, params)
    blend = _BlendObjective(scorer, model, validator, params)
    params, blend_ndcg, blend_trials = coordinate_search(blend, params, BLEND_GRID, min_z=MOVE_Z)
    params, fallback = _keep_if_better(
        blend, params, BLEND_FALLBACKS, scorer.ease is not None, "blend"
    )
    params, cross_hit, cross_trials = _search_cross_sell(scorer, model, split, params)
    configure(scorer, model, params)
    complements, complement_report = complement_search.search(
        model, scorer, split, train, items, events
    )
    report = {
        "validation_users": len(split),
        "retrieval_ndcg@20": round(retrieval_ndcg, 5),
        "blend_ndcg@20": round(blend_ndcg, 5),
        "blend_fallback": fallback,
        "cross_sell_hit@10": None if cross_hit is None else round(cross_hit, 5),
        "trials": len(trials) + len(blend_trials) + len(cross_trials),
        "complements": complement_report,
    }
    logger.info("default model validation: %s", report)
    return params, complements, report


class _BlendObjective:
    """NDCG@k of blend weights; component scores cached per history decay when small enough."""

    def __init__(self, scorer, model, validator: Validator, params: dict) -> None:
        self.scorer, self.model, self.validator = scorer, model, validator
        self.fixed = {k: params[k] for k in ("user_weight", "query_tau", "half_life_days")}
        size = len(validator.split) * scorer.n_items * 4
        self.cacheable = size <= CACHE_FLOATS
        self.cache: dict[float, tuple[list, dict]] = {}

    def _components(self, tau: float):
        if tau in self.cache:
            return self.cache[tau]
        configure(self.scorer, self.model, self.model.params | self.fixed | {"history_tau": tau})
        batches, sums = [], {}
        for rows, users in self.validator.batches():
            hq, hh = self.scorer.user_histories(users)
            parts = self.scorer.components(users, hq, hh, every=True)
            for name, value in parts.items():
                std = value.to(torch.float64).std(dim=1).sum() if value.shape[1] > 1 else 0.0
                sums[name] = sums.get(name, 0.0) + float(std)
            batches.append((rows, parts if self.cacheable else None))
        n = max(len(self.validator.split), 1)
        scales = {k: (v / n if v > 1e-12 * n else 1.0) for k, v in sums.items()}
        if not self.cacheable:
            self.cache.clear()
        self.cache[tau] = (batches, scales)
        return batches, scales

    def __call__(self, p: dict) -> np.ndarray:
        batches, scales = self._components(p["history_tau"])
        out = []
        for rows, parts in batches:
            if parts is None:  # too large to cache: recompute this batch
                users = torch.from_numpy(self.validator.split.users[rows])
                hq, hh = self.scorer.user_histories(users)
                parts = self.scorer.components(users, hq, hh, every=True)
            scores = sum(
                (p[f"w_{name}"] / scales[name]) * value
                for name, value in parts.items()
                if p[f"w_{name}"]
            )
            if not torch.is_tensor(scores):
                scores = torch.zeros(len(rows), self.scorer.n_items)
            out.append(self.validator.batch_ndcg(rows, scores.cpu().clone()).numpy())
        return np.concatenate(out)


def _baskets(split: ValidationSplit, n_items: int, seed: int):
    """(query baskets (b, n_items) summing to 1, held-out item per basket) from held-out events."""
    held = split.held_out
    in_inner = np.bincount(split.inner.items, minlength=n_items) > 0
    keep = in_inner[held.items]
    if has_sessions(held):
        _, group = np.unique(
            np.asarray(held.sessions, dtype=object).astype(str), return_inverse=True
        )
    else:
        group = held.users
    group, items = group[keep], held.items[keep]
    pairs = np.unique(np.stack([group, items], axis=1), axis=0)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    sizes = np.diff(np.r_[starts, len(pairs)])
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(sizes >= 2)
    if len(chosen) > MAX_BASKETS:
        chosen = np.sort(rng.choice(chosen, MAX_BASKETS, replace=False))
    if len(chosen) == 0:
        return None, None
    target_pos = starts[chosen] + rng.integers(0, sizes[chosen])
    baskets = torch.zeros(len(chosen), n_items)
    row_of = np.repeat(np.arange(len(chosen)), sizes[chosen])
    member = np.concatenate(
        [np.arange(s, s + z) for s, z in zip(starts[chosen], sizes[chosen], strict=True)]
    )
    rest = member != np.repeat(target_pos, sizes[chosen])
    baskets[row_of[rest], pairs[member[rest], 1]] = 1.0
    baskets /= baskets.sum(dim=1, keepdim=True)
    return baskets, torch.from_numpy(pairs[target_pos, 1])


def _search_cross_sell(scorer, model, split: ValidationSplit, params: dict):
    baskets, targets = _baskets(split, scorer.n_items, model.seed)
    if baskets is None:
        logger.info("cross-sell: no validation basket with two items; keeping the defaults")
        return params, None, []
    parts = scorer.cross_sell_components(baskets)
    in_basket = baskets > 0
    priors = {  # the popularity part per recency half-life (None: all-time popularity)
        h: scorer._cross_prior({"half_life_days": h})[None, :].expand(len(baskets), -1)
        for h in CROSS_GRID["cross_half_life_days"]
    }

    def hits(p: dict) -> np.ndarray:
        chosen = parts | {"pop": priors[p["cross_half_life_days"]]}
        scores = sum(p[f"cross_{name}"] * value for name, value in chosen.items())
        scores = scores.cpu().clone() if torch.is_tensor(scores) else torch.zeros_like(baskets)
        scores[in_basket] = -torch.inf
        k = min(CROSS_SELL_K, scorer.n_items - 1)
        top = torch.topk(scores, max(k, 1), dim=1).indices
        return (top == targets[:, None]).any(dim=1).double().numpy()

    params, hit_rate, trials = coordinate_search(hits, params, CROSS_GRID, min_z=MOVE_Z)
    params, fallback = _keep_if_better(hits, params, CROSS_FALLBACKS, False, "cross-sell blend")
    return params, (float(hits(params).mean()) if fallback else hit_rate), trials
