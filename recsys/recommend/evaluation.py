"""The served default model as an evaluable recommender: fit -> bundle -> engine -> scores.

``recsys.eval.evaluate_model`` fits a model and ranks items with ``model.score(users)``. For the
default model that would measure ``HybridModel``'s batched full-catalogue scores, not what the
online API answers. ``ServedModel`` measures the served path instead: it fits the default model,
exports it to an in-memory serving bundle exactly as training does, builds a
``RecommendationEngine`` on it and scores each user through the engine's candidate path
(candidate generation, filters, the request-time scorer). Candidates get their engine scores,
every other item ``-inf``; the evaluator excludes the users' training items itself.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recsys.bundle import bundle_of
from recsys.data.interactions import Interactions
from recsys.models.base import NotFittedError
from recsys.models.hybrid import HybridModel
from recsys.recommend.engine import RecommendationEngine, RecommendRequest
from recsys.recommend.filters import Filters

logger = logging.getLogger(__name__)

EVALUATION_FILTERS = Filters(exclude_purchased=False, exclude_seen=True, in_stock=False)
"""Rank every catalogue item the user has not interacted with (the protocol's candidates)."""


class ServedModel:
    """The default configuration's served model, for ``recsys.eval.evaluate_model``.

    Parameters
    ----------
    engine : dict, optional
        ``RecommendationEngine`` keyword arguments (e.g. ``index_kind``, ``candidates``,
        ``exact_scoring_limit``); the engine runs its scoring on the CPU.
    k : int
        Items each request asks for (the ANN width is ``max(candidates, 4 k)``).
    filters : Filters
        The requests' filters (default: every item the user has not interacted with).
    device : str
        Where the default model trains.
    **model_kwargs
        ``HybridModel`` arguments (``dim``, ``epochs``, ``tune``, ``seed`` ...).
    """

    name = "default"

    def __init__(
        self,
        engine: dict | None = None,
        k: int = 50,
        filters: Filters = EVALUATION_FILTERS,
        device="auto",
        **model_kwargs,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.model = HybridModel(device=device, **model_kwargs)
        self.engine_kwargs = {"device": "cpu"} | dict(engine or {})
        self.k = k
        self.filters = filters
        self.engine: RecommendationEngine | None = None
        self.n_items = 0

    @property
    def report(self) -> dict:
        """The default model's fit report (chosen parameters, validation search)."""
        return self.model.report

    def fit(self, train: Interactions, items=None, users=None) -> ServedModel:
        """Fit the default model on ``train`` and build the engine over its bundle."""
        self.model.fit(train, items=items, users=users)
        self.engine = RecommendationEngine(
            bundle_of(self.model, items), model_version="evaluation", **self.engine_kwargs
        )
        self.n_items = len(self.engine.item_ids)
        logger.info("served model ready: %s", self.engine.index.describe()["kind"])
        return self

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """(b, n_items) float32: engine scores on each user's candidates, ``-inf`` elsewhere."""
        if self.engine is None:
            raise NotFittedError("served model is not fitted; call fit() first")
        engine = self.engine
        rows = torch.as_tensor(users).reshape(-1).cpu().numpy()
        requests = [RecommendRequest(str(engine.user_ids[u]), self.k, None, self.filters)
                    for u in rows]  # fmt: skip
        out = torch.full((len(rows), self.n_items), -torch.inf)
        for row, (candidates, scores) in enumerate(engine.candidate_scores(requests)):
            index = torch.from_numpy(np.array(candidates, dtype=np.int64))  # a writable copy
            out[row, index] = torch.from_numpy(np.array(scores, dtype=np.float32))
        return out
