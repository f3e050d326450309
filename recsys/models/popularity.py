"""Popularity: rank items by how many distinct users interacted with them."""

from __future__ import annotations

import torch

from recsys.models.base import Recommender


class PopularityModel(Recommender):
    """Same ranking for everyone: distinct-user counts in the training data."""

    name = "pop"

    def _fit(self, train, items=None, users=None) -> None:
        counts = torch.as_tensor(train.item_counts(), dtype=torch.float32)
        self.counts = counts.to(self.device)

    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(histories.shape[0], -1).clone()
