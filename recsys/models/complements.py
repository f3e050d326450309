"""What goes with an item: complement statistics learned from purchase events.

Cross-sell is not "more of the same". ``ComplementModel`` learns, from the strong events
(purchases and cart adds; every positive event when the data has neither):

- item -> item complement counts ``c_ij``: ``j`` bought in the same basket as ``i`` (both ways),
  or bought after ``i`` by the same customer within ``window_days`` (bought X, then Y);
- category -> item complement shares ``P(j | a basket of category a)``: the counts pooled over
  every item of a category, so an item with little data, or a new item of a known category,
  inherits what goes with its category (a new camera gets memory cards);
- per-category repeat behaviour: the share of a category's buyers who buy it again, in several
  units or in a later basket within ``window_days``. Same-category items (substitutes) are
  demoted in cross-sell unless customers of that category buy it repeatedly (consumables), and
  a purchase in a rarely re-bought (durable) category moves the next answer to its complements.
  (Units per purchase are not part of ``Interactions``; a basket counts once.)

The result is a set of plain arrays (``comp_*``) read by ``ComplementScorer`` at serving time.
Item categories are an input (the item table's ``category`` column); without them every item
shares one category, so item evidence is shrunk towards plain co-purchase popularity.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.errors import InvalidInputError
from recsys.models.complement_scorer import INTENT_PARAMS
from recsys.models.weighting import SECONDS_PER_DAY, EventWeighting

logger = logging.getLogger(__name__)

STRONG_WEIGHT = 0.5  # event types at least this strong (purchase, add_to_cart, rate) count
MAX_FOLLOWERS = 30  # a strong event pairs with at most this many later strong events
DEFAULT_COMPLEMENT_PARAMS = {
    "window_days": 14.0,  # "bought X, then Y within N days"; also the repeat-purchase window
    "sequence_weight": 0.5,  # a later-basket pair counts this much of a same-basket pair
    "shrinkage": 2.0,  # pseudo-baskets of category evidence mixed into each item's row
    "substitute_floor": 0.05,  # same-category factor in a category nobody re-buys
    "repeat_full": 0.5,  # repeat rate at which same-category items are not demoted at all
    "repeat_days": 30.0,  # a category bought again within this many days is "re-bought"
    "popularity": 0.0,  # weight of the (log) popularity prior added to the complement scores
} | INTENT_PARAMS


def item_categories(items: pd.DataFrame | None, item_ids) -> tuple[np.ndarray, np.ndarray]:
    """(category code per item index, -1 unknown; category names) from an item table."""
    item_ids = np.asarray(item_ids).astype(str)
    if items is None or "category" not in items or "item_id" not in items or not len(items):
        return np.full(len(item_ids), -1, np.int64), np.zeros(0, dtype=str)
    table = items.drop_duplicates("item_id")
    table = table[table["category"].notna()]
    lookup = pd.Series(
        table["category"].astype(str).to_numpy(), index=table["item_id"].astype(str).to_numpy()
    )
    names = lookup.reindex(item_ids).to_numpy(dtype=object)
    known = pd.notna(names)
    vocabulary = np.unique(names[known].astype(str))
    codes = np.full(len(item_ids), -1, np.int64)
    codes[known] = np.searchsorted(vocabulary, names[known].astype(str))
    return codes, vocabulary.astype(str)


def raw_events(train: Interactions, events) -> Interactions:
    """``events`` (an Interactions or a canonical events frame) on ``train``'s vocabularies;
    ``train`` itself when ``events`` is None or holds none of its users' items."""
    if events is None:
        return train
    if isinstance(events, pd.DataFrame):
        missing = {"user_id", "item_id", "timestamp"} - set(events.columns)
        if missing:
            raise InvalidInputError(f"events: missing columns {sorted(missing)}")
        events = Interactions.from_frame(events, user_ids=train.user_ids, item_ids=train.item_ids)
    elif not isinstance(events, Interactions):
        raise InvalidInputError(f"events must be an events table, got {type(events).__name__}")
    elif events.n_items != train.n_items:
        raise InvalidInputError(
            f"events must share the training item vocabulary ({train.n_items} items), "
            f"got {events.n_items}"
        )
    if len(events) == 0:
        logger.warning("complements: the raw events hold no training pair; using the pairs")
        return train
    return events


def _top_rows(matrix: sp.csr_matrix, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``m`` largest entries as dense (rows, m) index / value arrays (-1: none)."""
    rows = matrix.shape[0]
    index = np.full((rows, m), -1, np.int64)
    values = np.zeros((rows, m), np.float32)
    for r in range(rows):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        if hi == lo:
            continue
        cols, vals = matrix.indices[lo:hi], matrix.data[lo:hi]
        if hi - lo > m:
            keep = np.argpartition(-vals, m - 1)[:m]
            cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))
        index[r, : len(order)], values[r, : len(order)] = cols[order], vals[order]
    return index, values


class ComplementModel:
    """Learns the ``comp_*`` arrays (see the module docstring).

    Parameters
    ----------
    params : dict or None
        Overrides of ``DEFAULT_COMPLEMENT_PARAMS``.
    neighbours : int
        Complements kept per item and per category.
    weighting : EventWeighting or None
        Event-type weights (the default model's).
    """

    def __init__(self, params: dict | None = None, neighbours: int = 100, weighting=None) -> None:
        unknown = set(params or {}) - set(DEFAULT_COMPLEMENT_PARAMS)
        if unknown:
            raise InvalidInputError(
                f"unknown complement params {sorted(unknown)}; expected some of "
                f"{sorted(DEFAULT_COMPLEMENT_PARAMS)}"
            )
        self.params = DEFAULT_COMPLEMENT_PARAMS | dict(params or {})
        for name, value in self.params.items():
            if not np.isfinite(value) or value < 0:
                raise InvalidInputError(f"complement param {name} must be >= 0, got {value}")
        if neighbours <= 0:
            raise InvalidInputError(f"complement neighbours must be positive, got {neighbours}")
        self.neighbours = int(neighbours)
        self.weighting = weighting or EventWeighting()
        self.arrays: dict[str, np.ndarray] = {}

    def fit(
        self, train: Interactions, categories: np.ndarray | None = None, names=None, events=None
    ) -> ComplementModel:
        """Learn the complement arrays.

        Parameters
        ----------
        train : Interactions
            The model's training interactions (their item vocabulary is the arrays' index).
        categories : np.ndarray or None
            A category code per item index (-1: unknown).
        names : array-like or None
            The category names of the codes.
        events : Interactions, DataFrame or None
            The raw events of the same period, one row per event (``train`` may hold one row per
            user and item, which hides re-buying); learned from instead of ``train`` when given.
            Rows outside ``train``'s vocabularies are dropped.
        """
        n = train.n_items
        train = raw_events(train, events)
        codes = np.full(n, -1, np.int64) if categories is None else np.asarray(categories)
        if len(codes) != n:
            raise InvalidInputError(
                f"categories must have one code per item ({n}), got {len(codes)}"
            )
        names = np.asarray([] if names is None else names).astype(str)
        if (codes < 0).all():  # no categories: one shared category (plain co-purchase prior)
            codes, names = np.zeros(n, np.int64), np.array(["*"])
        n_cat = max(int(codes.max()) + 1, len(names))
        users, items, times, weights, baskets, bought = self._strong_events(train)
        counts = self._pair_counts(users, items, times, weights, baskets, n)
        mass = np.bincount(items, weights=weights, minlength=n).astype(np.float32)
        member = sp.csr_matrix(
            (np.ones(int((codes >= 0).sum()), np.float32),
             (codes[codes >= 0], np.flatnonzero(codes >= 0))), shape=(n_cat, n),
        )  # fmt: skip
        pooled = (member @ counts).tocsr()
        cat_mass = np.asarray(member @ mass).reshape(-1)
        pooled = sp.diags(1.0 / np.maximum(cat_mass, 1e-12)).astype(np.float32) @ pooled
        item_index, item_values = _top_rows(counts.tocsr(), self.neighbours)
        cat_index, cat_values = _top_rows(pooled.tocsr(), self.neighbours)
        self.arrays = {
            "comp_index": item_index,
            "comp_values": item_values,
            "comp_mass": mass,
            "comp_category": codes.astype(np.int64),
            "comp_category_names": np.asarray(names, dtype=str)[:n_cat]
            if len(names) >= n_cat
            else np.array([str(c) for c in range(n_cat)]),
            "comp_category_index": cat_index,
            "comp_category_values": cat_values,
            "comp_repeat": self._repeat_rates(
                *(a[bought] for a in (users, items, times, baskets)), codes, n_cat
            ),
        }
        logger.info("complements: %d strong events, %d item pairs, %d categories",
                    len(items), counts.nnz, n_cat)  # fmt: skip
        return self

    def config(self) -> dict:
        """The JSON config the scorer reads."""
        return dict(self.params)

    # ------------------------------------------------------------------ statistics
    def _strong_events(self, train: Interactions):
        """(user, item, time, weight, basket, purchase?) of the strong events, one per (basket,
        item); ``purchase?`` marks purchases (every event when the data has none)."""
        weights = self.weighting.type_weights(train.event_types)
        strong = weights >= STRONG_WEIGHT
        if not strong.any():
            strong = weights > 0
        idx = np.flatnonzero(strong)
        users, items, times = train.users[idx], train.items[idx], train.timestamps[idx]
        if train.sessions is not None and len(train.sessions) == len(train):
            _, baskets = np.unique(np.asarray(train.sessions, dtype=object)[idx].astype(str),
                                   return_inverse=True)  # fmt: skip
        else:  # no sessions: a customer's day is a basket
            baskets = users * 1_000_000 + np.floor(times / SECONDS_PER_DAY).astype(np.int64)
            _, baskets = np.unique(baskets, return_inverse=True)
        w = weights[idx]
        order = np.lexsort((-w, items, baskets))  # keep each (basket, item)'s strongest event
        first = np.ones(len(order), dtype=bool)
        first[1:] = (baskets[order][1:] != baskets[order][:-1]) | (
            items[order][1:] != items[order][:-1]
        )
        keep = order[first]
        order = keep[np.lexsort((items[keep], times[keep], users[keep]))]
        bought = np.asarray(train.event_types, dtype=object)[idx][order] == "purchase"
        if not bought.any():
            bought[:] = True
        return users[order], items[order], times[order], w[order], baskets[order], bought

    def _pair_counts(self, users, items, times, weights, baskets, n: int) -> sp.coo_matrix:
        """Weighted complement counts: same basket both ways, later baskets forwards."""
        window = self.params["window_days"] * SECONDS_PER_DAY
        rows, cols, vals = [], [], []
        for d in range(1, MAX_FOLLOWERS + 1):
            if d >= len(items):
                break
            a, b = slice(0, len(items) - d), slice(d, None)
            same_user = users[a] == users[b]
            if not same_user.any():
                break
            same_basket = baskets[a] == baskets[b]
            ok = (
                same_user & (items[a] != items[b]) & (same_basket | (times[b] - times[a] <= window))
            )
            w = weights[a] * weights[b] * np.where(same_basket, 1.0, self.params["sequence_weight"])
            rows += [items[a][ok], items[b][ok & same_basket]]
            cols += [items[b][ok], items[a][ok & same_basket]]
            vals += [w[ok], w[ok & same_basket]]
        if not rows:
            return sp.coo_matrix((n, n), dtype=np.float32)
        counts = sp.coo_matrix(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, n),
        )
        counts.sum_duplicates()
        return counts

    def _repeat_rates(self, users, items, times, baskets, codes, n_cat) -> np.ndarray:
        """Per category: share of its buyers who buy it again in a later basket within
        ``repeat_days``."""
        cat = codes[items]
        known = cat >= 0
        users, cat, times, baskets = users[known], cat[known], times[known], baskets[known]
        frame = pd.DataFrame({"u": users, "c": cat, "t": times, "b": baskets})
        per_basket = frame.groupby(["u", "c", "b"], sort=False)["t"].min().reset_index()
        per_basket = per_basket.sort_values(["u", "c", "t"], kind="mergesort")
        again = (
            (per_basket["u"].to_numpy()[1:] == per_basket["u"].to_numpy()[:-1])
            & (per_basket["c"].to_numpy()[1:] == per_basket["c"].to_numpy()[:-1])
            & (np.diff(per_basket["t"].to_numpy()) <= self.params["repeat_days"] * SECONDS_PER_DAY)
        )
        repeat = np.zeros(len(per_basket), dtype=bool)
        repeat[:-1] = again  # this basket is followed by another of the same category
        buyers = pd.DataFrame({"u": per_basket["u"], "c": per_basket["c"], "r": repeat})
        rate = buyers.groupby(["c", "u"])["r"].any().groupby("c").mean()
        out = np.zeros(n_cat, np.float32)
        out[rate.index.to_numpy(np.int64)] = rate.to_numpy(np.float32)
        return out
