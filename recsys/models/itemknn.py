"""ItemKNN: cosine item-item similarity, each item keeping its top-k neighbours."""

from __future__ import annotations

import torch

from recsys.errors import InvalidInputError
from recsys.models.base import Recommender, gram_matrix


class ItemKNNModel(Recommender):
    """score(u, j) = sum over the user's items i of sim(i, j); cosine similarity, top-k per i.

    Parameters
    ----------
    neighbours : int
        Neighbours kept per item (the rest of its similarity row is zero).
    shrink : float
        Added to the cosine's denominator, damping similarities of rarely seen items.
    device : str or torch.device
        Where the similarity matrix lives and scoring runs.
    """

    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 0.0, device="auto") -> None:
        super().__init__(device)
        if neighbours <= 0:
            raise InvalidInputError(f"ItemKNN neighbours must be positive, got {neighbours}")
        self.neighbours = int(neighbours)
        self.shrink = float(shrink)
        self.similarity: torch.Tensor | None = None

    def _fit(self, train, items=None, users=None) -> None:
        gram = gram_matrix(self._history, self.device)
        norms = torch.sqrt(torch.diagonal(gram)).clamp_min(1e-12)
        sim = gram / (norms[:, None] * norms[None, :] + self.shrink)
        sim.fill_diagonal_(0.0)
        k = min(self.neighbours, train.n_items - 1) if train.n_items > 1 else 0
        pruned = torch.zeros_like(sim, dtype=torch.float32)
        if k > 0:
            values, index = torch.topk(sim, k, dim=1)
            pruned.scatter_(1, index, values.to(torch.float32))
        self.similarity = pruned

    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        return histories.to(self.device, torch.float32) @ self.similarity
