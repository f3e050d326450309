"""The engine's hot path: one request's scores from the default model on sparse histories.

``BlendScorer`` scores batches of users over the whole catalogue with dense ``(b, n_items)``
histories, the right shape for training and evaluation. One online request needs far less: a
user's 20-200 recent events and a few hundred candidate items. ``RequestScorer`` computes the same
scores (``BlendScorer.score_states(...)[0, candidates]``, up to float rounding) touching only the
history items and the candidates: the query is a weighted sum of a few context vectors, EASE reads
only the history items' rows, co-visitation scatters only their neighbour lists.

It works on host (numpy) views of the scorer's arrays: zero-copy when the scorer lives on the
CPU; on a GPU scorer, host copies (single requests are faster on the CPU than as GPU launches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.models.blend import BlendScorer, UserState
from recsys.models.checks import check_basket, check_event_arrays, check_indices, check_user
from recsys.models.weighting import SECONDS_PER_DAY, EventWeighting


@dataclass
class PreparedState:
    """A request's user state, weighted once: normalised histories and the ANN query."""

    user: int | None
    query_items: np.ndarray
    query_weights: np.ndarray
    history_items: np.ndarray
    history_weights: np.ndarray
    query: np.ndarray

    @property
    def empty(self) -> bool:
        return len(self.query_items) == 0 and len(self.history_items) == 0


def _host(tensor) -> np.ndarray:
    tensor = tensor.detach()
    return tensor.numpy() if tensor.device.type == "cpu" else tensor.cpu().numpy()


def _normalised(weights: np.ndarray) -> np.ndarray:
    total = weights.sum(dtype=np.float32)
    return weights / total if total > 0 else weights


class RequestScorer:
    """Single-request scoring of a ``BlendScorer`` (see the module docstring).

    Parameters
    ----------
    scorer : BlendScorer
        The served model; its weights, scales and weightings are read at every call, so a
        reconfigured scorer is honoured.
    """

    def __init__(self, scorer: BlendScorer) -> None:
        self.scorer = scorer
        self.n_items = scorer.n_items
        self.item_vectors = _host(scorer.item_vectors)
        self.context_vectors = _host(scorer.context_vectors)
        self.user_vectors = _host(scorer.user_vectors)  # shared with the scorer on the CPU
        self.mean_user = _host(scorer.mean_user)
        self.ease = None if scorer.ease is None else _host(scorer.ease)
        self.next_index, self.next_values = _host(scorer.next_index), _host(scorer.next_values)
        self.cross_index = _host(scorer.cross_index)
        self.cross_values = _host(scorer.cross_values)
        self.prior = _host(scorer.prior)
        self.cross_prior = _host(scorer.cross_prior)
        self.unit_items = _host(scorer.unit_items)

    # ------------------------------------------------------------------ personalised
    def prepare(self, state: UserState) -> PreparedState:
        """Weigh ``state``'s events once (query and blend histories) and build its query."""
        scorer = self.scorer
        user = None if state.user is None else check_user(state.user, scorer.n_users)
        items = check_indices(state.items, self.n_items)
        (qi, qw), (hi, hw) = weigh_history(
            (scorer.query_weighting, scorer.history_weighting),
            items, state.timestamps, state.event_types,
        )  # fmt: skip
        qw, hw = _normalised(qw), _normalised(hw)
        if len(qi) == 0:
            query = self.mean_user.astype(np.float32, copy=True)
        else:
            query = qw @ self.context_vectors[qi]
            if user is not None:
                query = query + np.float32(scorer.user_weight) * self.user_vectors[user]
        return PreparedState(user, qi, qw, hi, hw, np.asarray(query, dtype=np.float32))

    def score(self, state: PreparedState | UserState, candidates) -> np.ndarray:
        """Blend scores (float32) of ``candidates`` (item indices) for one state."""
        if isinstance(state, UserState):
            state = self.prepare(state)
        cand = check_indices(candidates, self.n_items, "candidate item indices")
        scorer = self.scorer
        weights, scales = scorer.weights, scorer.scales
        full = 4 * len(cand) >= self.n_items  # cheaper to score everything, then pick
        total = None

        def add(name: str, value: np.ndarray) -> None:
            nonlocal total
            term = np.float32(weights[name] / scales[name]) * value
            total = term if total is None else total + term

        if weights.get("twotower"):
            add("twotower", (self.item_vectors @ state.query)[cand] if full
                else self.item_vectors[cand] @ state.query)  # fmt: skip
        hi, hw = state.history_items, state.history_weights
        if self.ease is not None and weights.get("ease"):
            if len(hi) == 0:
                add("ease", np.zeros(len(cand), np.float32))
            elif full:
                add("ease", (hw @ self.ease[hi])[cand])
            else:
                add("ease", hw @ self.ease[np.ix_(hi, cand)])
        if weights.get("covisit"):
            add("covisit", neighbour_sums(self.next_index, self.next_values, hi, hw, cand))
        if weights.get("pop"):
            add("pop", self.prior[cand])
        if total is None:
            return np.zeros(len(cand), np.float32)
        return np.asarray(total, dtype=np.float32)

    def forget_user(self, user: int) -> int:
        """``BlendScorer.forget_user``, keeping the host copy of the user vectors in step."""
        removed = self.scorer.forget_user(user)
        self.user_vectors[user] = 0.0  # a no-op on the CPU, where the memory is shared
        return removed

    # ------------------------------------------------------------------ item to item
    def cross_sell(self, basket) -> np.ndarray:
        """``BlendScorer.cross_sell_scores`` as float32 numpy: basket items ``-inf``."""
        basket = check_basket(basket, self.n_items)
        share = np.full(len(basket), 1.0 / len(basket), dtype=np.float32)
        centre = share @ self.unit_items[basket]
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        parts = {
            "covisit": neighbour_sums(self.cross_index, self.cross_values, basket, share, None),
            "embedding": self.unit_items @ centre,
            "pop": self.cross_prior,
        }
        weights = self.scorer.cross_weights
        scores = np.zeros(self.n_items, np.float32)
        for name, value in parts.items():
            scores += np.float32(weights[name]) * value
        scores[basket] = -np.inf
        return scores


def neighbour_sums(index, values, items, weights, candidates) -> np.ndarray:
    """``sum_i weights[i] * values[items[i], m]`` over neighbours ``index[items[i], m]``.

    Returns the sums at ``candidates`` (float32), or over the whole catalogue when ``candidates``
    is None: ``recsys.models.covisit.neighbour_scores`` for one sparse history.
    """
    n_out = len(index) if candidates is None else len(candidates)
    if len(items) == 0:
        return np.zeros(n_out, np.float32)
    found = index[items]
    contrib = values[items] * weights[:, None]
    valid = found >= 0
    found, contrib = found[valid], contrib[valid]
    if candidates is None or 4 * len(candidates) >= len(index):
        sums = np.bincount(found, weights=contrib, minlength=len(index))
        return (sums if candidates is None else sums[candidates]).astype(np.float32)
    # few candidates in a large catalogue: sum onto the candidates alone (no catalogue-sized
    # temporary, which costs page faults on every request at a million items)
    targets = np.asarray(candidates, dtype=np.int64)
    inverse = None
    if len(targets) > 1 and not (targets[1:] > targets[:-1]).all():
        targets, inverse = np.unique(targets, return_inverse=True)
    if len(targets) == 0:
        return np.zeros(0, np.float32)
    at = np.minimum(np.searchsorted(targets, found), len(targets) - 1)
    hit = targets[at] == found
    sums = np.bincount(at[hit], weights=contrib[hit], minlength=len(targets)).astype(np.float32)
    return sums if inverse is None else sums[inverse]


def weigh_history(weightings: Sequence[EventWeighting], items, timestamps=None, event_types=None):
    """``[w.history(items, timestamps, event_types) for w in weightings]`` in one pass.

    The serving-time twin of ``EventWeighting.weigh`` for one user (same arithmetic, same
    results): the per-item reduction and the recency positions are computed once and shared by
    weightings that differ only in their decays; far fewer numpy calls than the batched version.
    """
    first = weightings[0]
    if any(w.event_weights != first.event_weights for w in weightings[1:]):
        return [w.history(items, timestamps, event_types) for w in weightings]
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    n = len(items)
    times = (
        np.arange(n, dtype=np.float64)
        if timestamps is None
        else np.asarray(timestamps, dtype=np.float64).reshape(-1)
    )
    if event_types is None:
        base = np.ones(n)
    else:
        table = first.event_weights
        try:
            base = np.fromiter((table[t] for t in event_types), dtype=np.float64, count=n)
        except (KeyError, TypeError, ValueError):
            base = first.type_weights(event_types)  # raises the clear error (or a length one)
    check_event_arrays(n, times, base)
    keep = base > 0
    if not keep.all():
        items, times, base = items[keep], times[keep], base[keep]
    if len(items) == 0:
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        return [empty for _ in weightings]
    # one entry per item: strongest type, latest time
    order = np.lexsort((times, items))
    items, times, base = items[order], times[order], base[order]
    start = np.ones(len(items), dtype=bool)
    start[1:] = items[1:] != items[:-1]
    starts = np.flatnonzero(start)
    ends = np.append(starts[1:], len(items)) - 1
    base = np.maximum.reduceat(base, starts)
    items, times = items[starts], times[ends]
    position = rank = None
    if any(w.position_tau is not None or w.max_items is not None for w in weightings):
        by_recency = np.lexsort((-items, -times))  # newest first; equal times share a position
        t = times[by_recency]
        new_time = np.ones(len(t), dtype=bool)
        new_time[1:] = t[1:] != t[:-1]
        steps = np.cumsum(new_time)
        position = np.empty(len(t), dtype=np.float64)
        position[by_recency] = steps - steps[0]
        rank = np.empty(len(t), dtype=np.int64)
        rank[by_recency] = np.arange(len(t))
    out = []
    for w in weightings:
        weights = base
        if w.position_tau is not None:
            weights = weights * np.exp(-position / w.position_tau)
        if w.max_items is not None:
            weights = np.where(rank < w.max_items, weights, 0.0)
        if w.half_life_days is not None and timestamps is not None:
            age_days = np.maximum(times.max() - times, 0.0) / SECONDS_PER_DAY
            weights = weights * np.power(0.5, age_days / w.half_life_days)
        positive = weights > 0
        out.append((items[positive], weights[positive].astype(np.float32)))
    return out
