"""Serving side of the complement model: cross-sell scores and the intent after an event.

``ComplementScorer`` reads the ``comp_*`` arrays of ``recsys.models.complements`` (plain numpy,
no training code) and answers:

- ``scores(items, categories)``: what goes with a basket. Per basket item ``i`` of category
  ``a``: ``(c_i. + k * P(. | a)) / (n_i + k)``, its complement counts shrunk towards its
  category's complements by ``k`` pseudo-baskets (an unknown item of a known category gets
  ``P(. | a)`` alone), averaged over the basket; items of the basket's categories are then
  multiplied by that category's ``keep_same`` factor (substitutes demoted unless re-bought);
- ``intent(...)`` / ``adjust(...)``: after a purchase in a rarely re-bought (durable) category
  the next personalised answer moves to its complements and away from that category; after an
  add_to_cart, or a few views of one category, it moves towards that category (and the cart
  item's complements), within the same request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recsys.errors import InvalidInputError

REQUIRED = (
    "comp_index", "comp_values", "comp_mass", "comp_category", "comp_category_names",
    "comp_category_index", "comp_category_values", "comp_repeat",
)  # fmt: skip
INTENT_DAYS = 3.0  # a purchase / cart add this recent (from the latest event) is "just did"
RECENT_EVENTS = 6  # views among this many latest events show a category interest
MIN_VIEWS = 2  # ... when at least this many of them are in one category
INTENT_PARAMS = {  # defaults; the model's validation search may choose others (config)
    "complement_shift": 2.0,  # complement boost (x the candidate scores' spread), full strength
    "durable_demotion": 2.0,  # demotion of a just-bought durable's category (x spread)
    "category_boost": 1.0,  # boost of the category of a cart add / of repeated views (x spread)
}


@dataclass
class Intent:
    """What the customer just did: complement scores to add, a category to move to or from."""

    complements: np.ndarray  # (n_items,) in [0, 1]
    category: int  # -1: none
    category_weight: float  # > 0 towards the category, < 0 away from it


class ComplementScorer:
    """Complement scores from ``comp_*`` arrays and a config (see the module docstring)."""

    def __init__(self, arrays: dict, config: dict) -> None:
        missing = [name for name in REQUIRED if name not in arrays]
        if missing:
            raise InvalidInputError(f"complement arrays are missing: {', '.join(missing)}")
        self.index = np.asarray(arrays["comp_index"], np.int64)
        self.values = np.asarray(arrays["comp_values"], np.float32)
        self.mass = np.asarray(arrays["comp_mass"], np.float32)
        self.category = np.asarray(arrays["comp_category"], np.int64)
        self.names = np.asarray(arrays["comp_category_names"]).astype(str)
        self.cat_index = np.asarray(arrays["comp_category_index"], np.int64)
        self.cat_values = np.asarray(arrays["comp_category_values"], np.float32)
        self.repeat = np.asarray(arrays["comp_repeat"], np.float32)
        self.config = INTENT_PARAMS | dict(config)  # bundles from before the intent search
        self.shrinkage = float(config["shrinkage"])
        floor, full = float(config["substitute_floor"]), float(config["repeat_full"])
        top = float(self.repeat.max()) if len(self.repeat) else 0.0
        rebought = np.clip(self.repeat / max(full * top, 1e-12), 0.0, 1.0) ** 2
        self.durability = 1.0 - rebought  # 1: nobody re-buys it; 0: among the most re-bought
        self.keep_same = floor + (1.0 - floor) * rebought
        if len(self.names) <= 1:  # no categories: no substitutes to tell apart
            self.keep_same[:] = 1.0
            self.durability[:] = 0.0
        self._codes = {name: code for code, name in enumerate(self.names)}
        self.prior = np.log1p(self.mass) / max(float(np.log1p(self.mass.max(initial=0.0))), 1e-12)
        # weight of that popularity prior (chosen on validation; a tie-breaker at least)
        self.popularity = max(float(self.config.get("popularity", 0.0)), 1e-6)

    @property
    def n_items(self) -> int:
        return len(self.mass)

    def category_code(self, name) -> int:
        """The code of category ``name`` (-1 when the model has not seen it)."""
        return self._codes.get(str(name), -1)

    def codes(self, item_ids, categories: Mapping | None) -> list[int]:
        """Category codes of ``item_ids`` named in ``categories`` (item id -> category name);
        names the model never saw, and ids without an entry, are skipped."""
        if not item_ids or categories is None:
            return []
        if not isinstance(categories, Mapping):
            raise InvalidInputError(
                f"categories must map item ids to category names, got {categories!r}"
            )
        codes = [self.category_code(categories[i]) for i in item_ids if i in categories]
        return [c for c in codes if c >= 0]

    def scores(self, items, categories=()) -> np.ndarray:
        """(n_items,) float32 complement scores of a basket; basket items ``-inf``.

        Parameters
        ----------
        items : array-like of int
            Known basket item indices.
        categories : iterable of int
            Category codes of further basket items the model does not know (e.g. new items).
        """
        items = np.unique(np.asarray(items, dtype=np.int64).reshape(-1))
        extra = [int(c) for c in categories if 0 <= int(c) < len(self.names)]
        if len(items) == 0 and not extra:
            raise InvalidInputError("cross-sell needs a basket item the model knows, or the "
                                    "category of one")  # fmt: skip
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise InvalidInputError(f"basket item indices must be in [0, {self.n_items})")
        scores = np.zeros(self.n_items, np.float64)
        for item in items:
            denominator = float(self.mass[item]) + self.shrinkage
            if denominator <= 0:
                continue
            self._scatter(scores, self.index[item], self.values[item] / denominator)
            code = self.category[item]
            if code >= 0 and self.shrinkage > 0:
                share = self.cat_values[code] * (self.shrinkage / denominator)
                self._scatter(scores, self.cat_index[code], share)
        for code in extra:
            self._scatter(scores, self.cat_index[code], self.cat_values[code])
        scores /= len(items) + len(extra)
        basket_categories = np.unique(np.r_[self.category[items], extra].astype(np.int64))
        basket_categories = basket_categories[basket_categories >= 0]
        same = np.isin(self.category, basket_categories)
        scores[same] *= self.keep_same[self.category[same]]
        scores += self.popularity * self.prior  # and ties (items without evidence) by it
        out = scores.astype(np.float32)
        out[items] = -np.inf
        return out

    def batch_scores(self, baskets) -> np.ndarray:
        """``scores`` of several baskets of known items at once, (len(baskets), n_items): what
        the validation search ranks with (a sum over flat indices instead of a loop)."""
        baskets = [np.unique(np.asarray(b, dtype=np.int64).reshape(-1)) for b in baskets]
        sizes = np.array([len(b) for b in baskets], dtype=np.int64)
        if (sizes == 0).any():
            raise InvalidInputError("cross-sell needs a basket item the model knows")
        n, rows = self.n_items, len(baskets)
        owner = np.repeat(np.arange(rows), sizes)
        items = np.concatenate(baskets)
        if items.min() < 0 or items.max() >= n:
            raise InvalidInputError(f"basket item indices must be in [0, {n})")
        denominator = self.mass[items].astype(np.float64) + self.shrinkage
        ok = denominator > 0
        parts = [(owner[ok], self.index[items[ok]], self.values[items[ok]] / denominator[ok, None])]
        code = self.category[items]
        by_category = ok & (code >= 0) & (self.shrinkage > 0)
        if by_category.any():
            share = (self.shrinkage / denominator[by_category])[:, None]
            parts.append((owner[by_category], self.cat_index[code[by_category]],
                          self.cat_values[code[by_category]] * share))  # fmt: skip
        flat, weights = [], []
        for row, index, values in parts:
            valid = index >= 0
            flat.append((np.broadcast_to(row[:, None], index.shape) * n + index)[valid])
            weights.append(values[valid])
        scores = np.bincount(np.concatenate(flat), np.concatenate(weights), minlength=rows * n)
        scores = scores.reshape(rows, n) / sizes[:, None]
        in_basket = np.zeros((rows, len(self.names) + 1), dtype=bool)
        in_basket[owner, code] = True  # code -1: the spare last column
        same = in_basket[:, self.category] & (self.category >= 0)
        keep = np.where(self.category >= 0, self.keep_same[np.maximum(self.category, 0)], 1.0)
        scores = np.where(same, scores * keep, scores) + self.popularity * self.prior
        out = scores.astype(np.float32)
        out[owner, items] = -np.inf
        return out

    @staticmethod
    def _scatter(scores: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
        valid = index >= 0
        np.add.at(scores, index[valid], values[valid])

    # ------------------------------------------------------------------ intent
    def intent(self, items, event_types, timestamps) -> Intent | None:
        """What the latest events (time order, oldest first) ask of the next answer, or None.

        A purchase or add_to_cart within ``INTENT_DAYS`` of the latest event: its complements;
        after a purchase of a durable category, away from that category (by its durability);
        after a cart add, towards it. Otherwise ``MIN_VIEWS`` views of one category among the
        ``RECENT_EVENTS`` latest events: towards that category.
        """
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        if len(items) == 0 or event_types is None:
            return None
        types = np.asarray(event_types, dtype=object).reshape(-1)
        times = (np.arange(len(items), dtype=np.float64) if timestamps is None
                 else np.asarray(timestamps, dtype=np.float64).reshape(-1))  # fmt: skip
        order = np.argsort(times, kind="stable")
        items, types, times = items[order], types[order], times[order]
        strong = np.flatnonzero(np.isin(types, ("purchase", "add_to_cart")))
        recent = times[-1] - INTENT_DAYS * 86_400.0
        if len(strong) and times[strong[-1]] >= recent:
            last = strong[-1]
            item, code = int(items[last]), int(self.category[items[last]])
            complements = self.scores([item])
            complements[~np.isfinite(complements)] = 0.0
            complements = complements / max(float(complements.max()), 1e-12)
            if types[last] == "purchase":
                weight = -float(self.durability[code]) if code >= 0 else 0.0
                return Intent(complements * max(-weight, 0.0), code, weight)
            return Intent(complements * 0.5, code, 1.0)
        viewed = self.category[items[-RECENT_EVENTS:][types[-RECENT_EVENTS:] == "view"]]
        viewed = viewed[viewed >= 0]
        if len(viewed) >= MIN_VIEWS:
            counts = np.bincount(viewed)
            if counts.max() >= MIN_VIEWS:
                share = counts.max() / len(viewed)
                return Intent(np.zeros(self.n_items, np.float32), int(counts.argmax()), share)
        return None

    def adjust(self, candidates, scores, intent: Intent | None, unit: float = 1.0) -> np.ndarray:
        """``scores`` of ``candidates`` moved by ``intent``, in multiples of ``unit`` (the
        scores' typical spread over items; independent of the candidates, so an item's score
        does not depend on which other items are scored)."""
        scores = np.asarray(scores, dtype=np.float32)
        if intent is None or len(scores) == 0:
            return scores
        candidates = np.asarray(candidates, dtype=np.int64)
        unit = np.float32(unit if unit > 0 else 1.0)
        shift = np.float32(self.config["complement_shift"])
        out = scores + unit * shift * intent.complements[candidates]
        if intent.category >= 0 and intent.category_weight:
            toward = intent.category_weight > 0
            weight = self.config["category_boost" if toward else "durable_demotion"]
            same = self.category[candidates] == intent.category
            out[same] += unit * np.float32(weight * intent.category_weight)
        return out.astype(np.float32)
