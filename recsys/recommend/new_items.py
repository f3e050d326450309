"""Items the served model never saw (added to the catalogue after training): vectors and scores.

A new item gets a vector from the item tower's content part: the tower's item vector is an id
embedding plus one embedding per content feature (category, price bucket; see
``recsys.models.features``), so a new item's vector is the mean id part of its category's trained
items plus the embeddings of its own features. Bundles written before the tower's feature tables
were exported get the mean vector of the item's category. The vector goes into the ANN index, so
the item is retrieved for queries near its category.

Its score comes from its *proxies*: the trained items of its category nearest to that vector
(all trained items when the category is new). Collaborative statistics (EASE, co-visitation,
co-purchase, complements, popularity) say nothing about an item nobody has bought yet, so the
new item takes the mean of its proxies' scores, with the two-tower term computed from its own
vector: it ranks where its closest siblings rank, until the next training learns it.
"""

from __future__ import annotations

import numpy as np

from recsys.models.features import encode_column
from recsys.recommend.filters import Catalogue
from recsys.recommend.scoring import PreparedState, RequestScorer

PROXIES = 5  # trained items a new item borrows its collaborative scores from


class ItemContent:
    """Content vectors of new items from the bundle's item-tower feature tables.

    Parameters
    ----------
    arrays, config : the bundle's arrays and config (``tower_item_feature_{f}``,
        ``config["item_tower"]`` with the feature names and vocabularies; optional).
    item_vectors : (n, dim) trained item vectors.
    catalogue : the trained items' catalogue (their categories and prices at training time).
    """

    def __init__(self, arrays: dict, config: dict, item_vectors, catalogue: Catalogue) -> None:
        tower = config.get("item_tower") or {}
        names = list(tower.get("names", ()))
        tables = [arrays.get(f"tower_item_feature_{f}") for f in range(len(names))]
        self.features = []
        if names and all(t is not None for t in tables):
            vocabularies = tower["vocabularies"]
            self.features = [
                (name, vocab, np.asarray(table, np.float32))
                for name, vocab, table in zip(names, vocabularies, tables, strict=True)
            ]
        vectors = np.asarray(item_vectors, np.float32)
        self.dim = vectors.shape[1]
        self.catalogue = catalogue
        id_part = vectors - self.content(catalogue.category, catalogue.price)
        codes = catalogue.category_code
        counts = np.bincount(codes, minlength=codes.max(initial=-1) + 1).astype(np.float32)
        sums = np.zeros((len(counts), self.dim), np.float32)
        np.add.at(sums, codes, id_part)
        self.centres = sums / np.maximum(counts, 1.0)[:, None]
        self.overall = id_part.mean(axis=0) if len(id_part) else np.zeros(self.dim, np.float32)
        self.unit_items = vectors / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)[:, None]

    def content(self, categories, prices) -> np.ndarray:
        """(m, dim) sum of the feature embeddings of items with these categories and prices."""
        out = np.zeros((len(categories), self.dim), np.float32)
        columns = {"category": np.asarray(categories, dtype=object), "price": prices}
        for name, vocabulary, table in self.features:
            values = columns.get(name)
            if values is None:
                continue  # a feature the live catalogue does not carry: its "missing" code
            codes, _ = encode_column(values, vocabulary["kind"], vocabulary)
            out += table[np.clip(codes, 0, len(table) - 1)]
        return out

    def vectors(self, categories, prices) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (m, dim), proxies (m, PROXIES)) of new items with these features."""
        codes = self.catalogue.category_codes(categories)
        known = codes >= 0
        base = np.where(known[:, None], self.centres[np.maximum(codes, 0)], self.overall)
        vectors = (base + self.content(categories, prices)).astype(np.float32)
        proxies = np.zeros((len(codes), PROXIES), np.int64)
        trained = self.catalogue.category_code
        for row, (code, vector) in enumerate(zip(codes, vectors, strict=True)):
            pool = np.flatnonzero(trained == code) if code >= 0 else np.arange(len(trained))
            unit = vector / max(float(np.linalg.norm(vector)), 1e-12)
            closeness = self.unit_items[pool] @ unit
            nearest = pool[np.argsort(-closeness, kind="stable")[:PROXIES]]
            proxies[row] = np.resize(nearest, PROXIES)  # fewer siblings: the nearest repeat
        return vectors, proxies


class NewItems:
    """The vectors and proxies of new items, at positions ``n_trained`` and up (immutable:
    :meth:`with_items` returns a new one, so answers in flight keep theirs)."""

    def __init__(self, n_trained: int, vectors=None, proxies=None, dim: int = 0) -> None:
        self.n_trained = int(n_trained)
        self.vectors = np.zeros((0, dim), np.float32) if vectors is None else vectors
        self.proxies = np.zeros((0, PROXIES), np.int64) if proxies is None else proxies

    def __len__(self) -> int:
        return len(self.vectors)

    def with_items(self, positions, vectors, proxies) -> NewItems:
        """A copy where new items at ``positions`` have these vectors and proxies (positions
        may replace held ones or append right after them)."""
        rows = np.asarray(positions, np.int64) - self.n_trained
        n = max(len(self), int(rows.max()) + 1) if len(rows) else len(self)
        grown_v = np.zeros((n, self.vectors.shape[1]), np.float32)
        grown_p = np.zeros((n, PROXIES), np.int64)
        grown_v[: len(self)], grown_p[: len(self)] = self.vectors, self.proxies
        grown_v[rows], grown_p[rows] = vectors, proxies
        return NewItems(self.n_trained, grown_v, grown_p)

    def representative(self, items) -> np.ndarray:
        """``items`` with each new item replaced by its nearest proxy (trained indices)."""
        items = np.asarray(items, np.int64)
        new = items >= self.n_trained
        if not new.any():
            return items
        out = items.copy()
        out[new] = self.proxies[items[new] - self.n_trained, 0]
        return out

    def extend(self, scores) -> np.ndarray:
        """Per-trained-item ``scores`` extended to the new items: each the mean of its proxies'
        finite scores (``-inf`` when none is finite, e.g. all in the basket)."""
        scores = np.asarray(scores)
        if not len(self):
            return scores
        borrowed = scores[self.proxies].astype(np.float64)
        finite = np.isfinite(borrowed)
        total = np.where(finite, borrowed, 0.0).sum(axis=1)
        count = finite.sum(axis=1)
        mean = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
        return np.concatenate([scores, mean.astype(scores.dtype)])

    def score(self, requests: RequestScorer, prepared: PreparedState, candidates) -> np.ndarray:
        """``requests.score(prepared, candidates)`` where candidates may be new items: the mean
        of their proxies' scores with the two-tower term of their own vector."""
        candidates = np.asarray(candidates, np.int64)
        new = candidates >= self.n_trained
        if not new.any():
            return requests.score(prepared, candidates)
        out = np.zeros(len(candidates), np.float32)
        if (~new).any():
            out[~new] = requests.score(prepared, candidates[~new])
        rows = candidates[new] - self.n_trained
        proxies = self.proxies[rows]
        borrowed = requests.score(prepared, proxies.reshape(-1)).reshape(proxies.shape)
        scorer = requests.scorer
        weight = scorer.weights.get("twotower", 0.0) / scorer.scales.get("twotower", 1.0)
        own = self.vectors[rows] @ prepared.query
        theirs = (requests.item_vectors[proxies] @ prepared.query).mean(axis=1)
        out[new] = borrowed.mean(axis=1) + np.float32(weight) * (own - theirs)
        return out

    def similar(self, requests: RequestScorer, item: int) -> np.ndarray:
        """Similar-item scores of every item (trained and new) for ``item``; ``item`` itself
        ``-inf``. A new item's similar items are its proxies, nearest first, then theirs."""
        if item < self.n_trained:
            return self.extend(requests.cross_sell([item]))
        row = item - self.n_trained
        proxies = np.unique(self.proxies[row])
        scores = requests.cross_sell(proxies)
        finite = scores[np.isfinite(scores)]
        top = float(finite.max()) if len(finite) else 0.0
        unit = self.vectors[row] / max(float(np.linalg.norm(self.vectors[row])), 1e-12)
        scores[proxies] = top + 1.0 + requests.unit_items[proxies] @ unit
        out = self.extend(scores)
        out[item] = -np.inf
        return out
