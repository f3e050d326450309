"""Audiences: reverse search over the user embeddings of a model.

*Affinity*: the N customers most likely to buy an item (or a category): the model's retrieval
score of every user for the item is the inner product of the user's query vector (trained user
vector plus stored history, as recommendations use it) with the item vector, so a FAISS
inner-product index over the users' query vectors answers it as a search with the item vector
(for a category, the popularity-weighted mean of its items' vectors). *Lookalike*: the N
customers most similar to a seed segment who are not in it: the search of the seed's mean unit
user vector in an index of unit user vectors (cosine), the seed left out. Erased customers
(forgotten by the model, zero vectors) are never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import numpy as np
import torch

from recsys.bundle import ServingBundle
from recsys.errors import InvalidInputError, NotFoundError
from recsys.index import make_index
from recsys.models.blend import BlendScorer
from recsys.segments.clusters import user_embeddings

logger = logging.getLogger(__name__)

CHUNK = 2048  # users per query-vector batch
MAX_AUDIENCE = 100_000


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_AUDIENCE:
        raise InvalidInputError(f"n: must be an integer between 1 and {MAX_AUDIENCE}, got {n!r}")
    return n


class AudienceFinder:
    """Affinity and lookalike audiences of one model.

    Parameters
    ----------
    bundle : ServingBundle
        The served model.
    version : str
        Its version (callers rebuild the finder when the served version changes).
    device : str
        Where the query vectors are computed and the indexes search.
    """

    def __init__(self, bundle: ServingBundle, version: str = "", device: str = "cpu") -> None:
        self.version = version
        self._forgotten: set[str] = set()
        scorer = BlendScorer.from_arrays(bundle.arrays, bundle.config, device=device)
        known = np.linalg.norm(np.asarray(bundle.arrays["user_vectors"]), axis=1) > 1e-8
        rows = np.flatnonzero(known)
        ids = [str(u) for u in np.asarray(bundle.user_ids)[rows]]
        queries = []
        with torch.no_grad():
            for lo in range(0, len(rows), CHUNK):
                users = torch.as_tensor(rows[lo : lo + CHUNK])
                hq, _ = scorer.user_histories(users)
                queries.append(scorer.queries(users, hq).float().cpu().numpy())
        dim = scorer.dim
        vectors = np.concatenate(queries) if queries else np.zeros((0, dim), np.float32)
        self.buyers = make_index("auto", dim=dim, device=device).build(ids, vectors)
        unit_ids, unit = user_embeddings(bundle)
        self.users = make_index("auto", dim=unit.shape[1], device=device)
        self.users.build(list(unit_ids), unit)
        self.item_vectors = scorer.item_vectors.float().cpu().numpy()
        self.item_index = {str(i): k for k, i in enumerate(np.asarray(bundle.item_ids))}
        popularity = np.asarray(bundle.arrays.get("popularity", np.ones(bundle.n_items)))
        self.popularity = np.asarray(popularity, dtype=np.float64)
        categories = bundle.items["category"] if "category" in bundle.items else None
        self.categories: dict[str, np.ndarray] = {}
        if categories is not None:
            names = categories.astype(object).to_numpy()
            for name in {c for c in names if isinstance(c, str)}:
                self.categories[name.casefold()] = np.flatnonzero(names == name)
        logger.info("audiences of model %s: %d users", version, len(ids))

    def _target(self, item_id: str | None, category: str | None) -> np.ndarray:
        if (item_id is None) == (category is None):
            raise InvalidInputError("item_id: give exactly one of item_id and category")
        if item_id is not None:
            if item_id not in self.item_index:
                raise NotFoundError(f"item_id: item {item_id!r} is not in the model")
            return self.item_vectors[self.item_index[item_id]]
        rows = self.categories.get(str(category).casefold())
        if rows is None or not len(rows):
            raise NotFoundError(f"category: no items of category {category!r} in the model")
        weights = self.popularity[rows] + 1.0
        return (weights[:, None] * self.item_vectors[rows]).sum(0) / weights.sum()

    def affinity(
        self, n: int, *, item_id: str | None = None, category: str | None = None,
        exclude: Collection[str] = (),
    ) -> list[tuple[str, float]]:  # fmt: skip
        """The ``n`` customers with the highest score for ``item_id`` or ``category`` (best
        first, with the score), leaving out ``exclude``."""
        target = self._target(item_id, category)
        return self._search(self.buyers, target, _check_n(n), exclude)

    def lookalike(
        self, seed: Collection[str], n: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``n`` customers most similar (cosine) to the mean of the ``seed`` customers,
        none of them in the seed or ``exclude``."""
        n = _check_n(n)
        known = [u for u in seed if u in self.users]
        if not known:
            raise InvalidInputError(
                f"seed: none of the {len(seed)} seed customers has an embedding in the model"
            )
        centre = np.mean([self.users.vector(u) for u in known], axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        return self._search(self.users, centre, n, set(seed) | set(exclude))

    def forget_hashed(self, hashes: Collection[str], hash_of: Callable[[str], str]) -> int:
        """Drop the users whose ``hash_of(user_id)`` is in ``hashes`` (erased customers) from
        both indexes; returns how many were dropped."""
        hashes = set(hashes) - self._forgotten
        if not hashes:
            return 0
        dropped = 0
        for index in (self.buyers, self.users):
            gone = [u for u in index.ids() if hash_of(str(u)) in hashes]
            dropped = max(dropped, index.remove(gone, missing="ignore") if gone else 0)
        self._forgotten |= hashes
        return dropped

    @staticmethod
    def _search(index, query: np.ndarray, n: int, exclude: Collection[str]):
        if len(index) == 0:
            return []
        k = min(n, len(index))
        query = np.asarray(query, np.float32)[None, :]
        scores, ids = index.search(query, k, exclude=set(exclude))
        return [
            (str(u), float(s))
            for u, s in zip(ids[0], scores[0], strict=True)
            if u is not None and np.isfinite(s)
        ]
