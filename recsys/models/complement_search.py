"""Validation search of the complement model (cross-sell) and the intent-shift strengths.

Runs on the default model's validation split (``recsys.models.tuning``), never on a test split or a
truth file. The complement statistics are learned from the inner events (the raw events when the
model was given them, each validation user's cut at his first held-out pair) and judged on what the
validation users went on to buy or put in the cart:

- basket units: in each later basket (session; a customer's day without sessions) with at least
  two such items, one item (seeded) is held out and ranked from the rest of the basket;
- next-basket units: an item of the user's first later basket ranked from his last inner basket
  ("bought X, then Y"; re-buying the same item is not cross-sell and is skipped).

The objective is the reciprocal rank at ``K`` per unit; the chosen parameters must beat plain
popularity by ``BASELINE_Z`` paired standard errors, else popularity is used. ``window_days`` and
``sequence_weight`` need a refit of the statistics (cached per pair of values); the other
parameters only a new scorer. The intent-shift strengths are then chosen by NDCG@20 of the
validation users whose inner history ends in an intent (``ComplementScorer.intent``): their
personalised scores moved by it, against their held-out pairs.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recsys.data.interactions import Interactions
from recsys.models.complement_scorer import ComplementScorer
from recsys.models.complements import STRONG_WEIGHT, ComplementModel, item_categories, raw_events
from recsys.models.tuning import ValidationSplit, Validator, coordinate_search, significant_gain
from recsys.models.weighting import SECONDS_PER_DAY, EventWeighting

logger = logging.getLogger(__name__)

K = 10
MAX_UNITS = 4000  # basket and next-basket units each
MAX_INTENT_USERS = 2000
BATCH_CELLS = 4_000_000  # units x items scored at once
COMPLEMENT_GRID = {
    "window_days": [3.0, 7.0, 14.0, 30.0],
    "sequence_weight": [0.0, 0.25, 0.5, 1.0],
    "shrinkage": [0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
    "substitute_floor": [0.0, 0.05, 0.1, 0.25, 0.5, 1.0],
    "repeat_full": [0.25, 0.5, 1.0],
    "popularity": [0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0],
}
POPULARITY_ONLY = {"popularity": 1000.0}  # complements only break popularity's ties
BASELINE_Z = 2.0  # complements must beat that by this many paired standard errors
REFIT = ("window_days", "sequence_weight", "repeat_days")  # change the learned arrays
INTENT_GRID = {
    "complement_shift": [0.0, 0.5, 1.0, 2.0, 4.0],
    "durable_demotion": [0.0, 0.5, 1.0, 2.0, 4.0],
    "category_boost": [0.0, 0.5, 1.0, 2.0],
}


def carve(events: Interactions, split: ValidationSplit) -> tuple[Interactions, Interactions]:
    """(inner, later) parts of ``events``: a validation user's events from the timestamp of his
    first held-out pair on are later; every other event is inner."""
    held = split.held_out
    cutoff = np.full(events.n_users, np.inf)
    np.minimum.at(cutoff, held.users, held.timestamps)
    later = events.timestamps >= cutoff[events.users]
    return _subset(events, ~later), _subset(events, later)


def _subset(events: Interactions, mask: np.ndarray) -> Interactions:
    return Interactions(
        user_ids=events.user_ids,
        item_ids=events.item_ids,
        users=events.users[mask],
        items=events.items[mask],
        timestamps=events.timestamps[mask],
        event_types=np.asarray(events.event_types, dtype=object)[mask],
        sessions=None if events.sessions is None else np.asarray(events.sessions)[mask],
    )


def _strong_baskets(events: Interactions, weighting) -> tuple[np.ndarray, ...]:
    """(user, basket, item, time) of the distinct strong (basket, item) pairs, time order."""
    weights = weighting.type_weights(events.event_types)
    strong = weights >= STRONG_WEIGHT
    if not strong.any():
        strong = weights > 0
    idx = np.flatnonzero(strong)
    users, items, times = events.users[idx], events.items[idx], events.timestamps[idx]
    if events.sessions is not None and len(events.sessions) == len(events):
        keys = np.asarray(events.sessions, dtype=object)[idx].astype(str)
    else:  # no sessions: a customer's day is a basket
        keys = (users * 1_000_000 + np.floor(times / SECONDS_PER_DAY).astype(np.int64)).astype(str)
    _, baskets = np.unique(keys, return_inverse=True)
    order = np.lexsort((items, times, users))
    users, baskets, items, times = users[order], baskets[order], items[order], times[order]
    _, first = np.unique(baskets * events.n_items + items, return_index=True)
    first = np.sort(first)
    return users[first], baskets[first], items[first], times[first]


def units(inner: Interactions, later: Interactions, weighting, seed: int):
    """(query item arrays, target items) of the basket and next-basket units (see module doc)."""
    rng = np.random.default_rng(seed)
    known = np.bincount(inner.items, minlength=inner.n_items) > 0
    users, baskets, items, times = _strong_baskets(later, weighting)
    keep = known[items]
    users, baskets, items, times = users[keep], baskets[keep], items[keep], times[keep]
    queries, targets = [], []
    by_basket = np.argsort(baskets, kind="stable")
    groups = np.split(items[by_basket], np.flatnonzero(np.diff(baskets[by_basket])) + 1)
    chosen = [g for g in groups if len(g) >= 2]
    for g in _sample(chosen, rng):
        target = int(rng.integers(len(g)))
        queries.append(np.delete(g, target))
        targets.append(int(g[target]))
    # next basket: the user's last inner strong basket -> his first later strong basket
    i_users, i_baskets, i_items, i_times = _strong_baskets(inner, weighting)
    last = {}
    for u, b, t in zip(i_users, i_baskets, i_times, strict=True):
        if u not in last or t >= last[u][1]:
            last[int(u)] = (int(b), t)
    first_later = {}
    for u, b, t in zip(users, baskets, times, strict=True):
        if int(u) not in first_later or t < first_later[int(u)][1]:
            first_later[int(u)] = (int(b), t)
    pairs = []
    for u, (b, _) in first_later.items():
        if u not in last:
            continue
        query = i_items[i_baskets == last[u][0]]
        following = np.setdiff1d(items[baskets == b], query)
        if len(following):
            pairs.append((query, following))
    for query, following in _sample(pairs, rng):
        queries.append(query)
        targets.append(int(following[rng.integers(len(following))]))
    return queries, np.asarray(targets, dtype=np.int64)


def _sample(rows: list, rng) -> list:
    if len(rows) <= MAX_UNITS:
        return rows
    return [rows[i] for i in np.sort(rng.choice(len(rows), MAX_UNITS, replace=False))]


def reciprocal_ranks(scorer: ComplementScorer, queries, targets) -> np.ndarray:
    """Reciprocal rank at ``K`` of each target in its query's complement scores (0: missed)."""
    out = np.zeros(len(targets))
    k = min(K, scorer.n_items - 1)
    step = max(1, BATCH_CELLS // max(scorer.n_items, 1))
    for start in range(0, len(targets), step):
        scores = scorer.batch_scores(queries[start : start + step])
        rows = np.arange(len(scores))
        value = scores[rows, targets[start : start + step]]
        rank = (scores > value[:, None]).sum(
            axis=1
        )  # ties favour the target (the prior rarely ties)
        hit = np.isfinite(value) & (rank < k)
        out[start : start + step][hit] = 1.0 / (rank[hit] + 1)
    return out


def search_complements(model, split: ValidationSplit, train: Interactions, items, events=None):
    """(parameters chosen on ``split`` (see the module docstring), a report, the complement
    arrays fitted on the inner events with them).

    ``model`` is the ``HybridModel`` being fitted (its ``complement_params`` are the start),
    ``train`` the interactions ``split`` was carved from, ``events`` its raw events (or None).
    """
    source = raw_events(train, events)
    inner, later = carve(source, split)
    weighting = EventWeighting(model.event_weights)
    queries, targets = units(inner, later, weighting, model.seed)
    codes, names = item_categories(items, train.item_ids)
    fitted: dict[tuple, dict] = {}

    def arrays(p: dict) -> dict:
        key = tuple(p[name] for name in REFIT)
        if key not in fitted:
            fit = ComplementModel(p, neighbours=model.covisit_neighbours, weighting=weighting)
            fitted[key] = fit.fit(split.inner, codes, names, events=inner).arrays
        return fitted[key]

    params = dict(model.complement_params)
    if len(targets) < 10:
        logger.info("complements: %d validation units; keeping the defaults", len(targets))
        return params, {"units": len(targets)}, arrays(params)

    def objective(p: dict) -> np.ndarray:
        return reciprocal_ranks(ComplementScorer(arrays(p), p), queries, targets)

    params, mrr, trials = coordinate_search(objective, params, COMPLEMENT_GRID, min_z=1.0)
    # Occam's razor, as the blend search does: complements must clearly beat plain popularity
    plain = objective(params | POPULARITY_ONLY)
    fallback = not significant_gain(objective(params), plain, BASELINE_Z)
    if fallback:
        logger.info("complements: not clearly better than popularity on validation; using it")
        params, mrr = params | POPULARITY_ONLY, float(plain.mean())
    report = {"units": len(targets), "mrr@10": round(mrr, 5), "trials": len(trials),
              "fits": len(fitted), "popularity_fallback": fallback}  # fmt: skip
    return params, report, arrays(params)


def search_intent(scorer, complements: ComplementScorer, split: ValidationSplit, seed: int):
    """Intent-shift strengths chosen by NDCG@20 of the validation users with an intent."""
    params = {name: complements.config[name] for name in INTENT_GRID}
    rows, intents = [], []
    for row, user in enumerate(split.users):
        state = scorer.user_state(int(user))
        intent = complements.intent(state.items, state.event_types, state.timestamps)
        if intent is not None:
            rows.append(row)
            intents.append(intent)
    if len(rows) < 10:
        return params, {"users": len(rows)}
    rows = np.asarray(rows)
    if len(rows) > MAX_INTENT_USERS:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), MAX_INTENT_USERS, False))
        rows, intents = rows[keep], [intents[i] for i in keep]
    users = torch.from_numpy(split.users[rows])
    base = torch.cat([scorer.score_users(users[s : s + 512]).cpu() for s in
                      range(0, len(users), 512)]).numpy()  # fmt: skip
    unit = sum(abs(w) for w in scorer.weights.values())
    everything = np.arange(scorer.n_items)
    validator = Validator(split)

    def ndcg(p: dict) -> np.ndarray:
        complements.config.update(p)
        moved = np.stack([complements.adjust(everything, base[i], intent, unit)
                          for i, intent in enumerate(intents)])  # fmt: skip
        return validator.batch_ndcg(rows, torch.from_numpy(moved)).numpy()

    before = ndcg(params)
    params, value, trials = coordinate_search(ndcg, params, INTENT_GRID, min_z=1.0)
    complements.config.update(params)
    report = {"users": len(rows), "ndcg@20_start": round(float(before.mean()), 5),
              "ndcg@20": round(value, 5), "trials": len(trials)}  # fmt: skip
    return params, report


def search(model, scorer, split: ValidationSplit, train, items, events=None):
    """Complement and intent parameters for ``model`` (a ``HybridModel``), and a report."""
    params, report, arrays = search_complements(model, split, train, items, events)
    chosen, report["intent"] = search_intent(
        scorer, ComplementScorer(arrays, params), split, model.seed
    )
    params |= chosen
    logger.info("complement validation: %s -> %s", report, params)
    return params, report
