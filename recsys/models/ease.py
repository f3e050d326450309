"""EASE (Steck, 2019): closed-form item-item linear autoencoder, torch on the model's device."""

from __future__ import annotations

import logging

import torch

from recsys.models.base import Recommender, gram_matrix

logger = logging.getLogger(__name__)


class EASEModel(Recommender):
    """B = argmin ||X - XB||² + λ||B||², diag(B) = 0, in closed form.

    Parameters
    ----------
    l2 : float
        The ridge λ (200 is the protocol's reference on ML-100K).
    max_items : int
        EASE inverts an items x items matrix; beyond this many items it refuses with a clear error
        (memory grows with items², time with items³).
    """

    name = "ease"

    def __init__(self, l2: float = 200.0, max_items: int = 40_000, device="auto") -> None:
        super().__init__(device)
        if l2 <= 0:
            raise ValueError(f"EASE l2 must be positive, got {l2}")
        self.l2 = float(l2)
        self.max_items = int(max_items)
        self.B: torch.Tensor | None = None

    def _fit(self, train, items=None, users=None) -> None:
        if train.n_items > self.max_items:
            raise ValueError(
                f"EASE needs an items x items inverse; {train.n_items} items exceeds "
                f"max_items={self.max_items} (raise it if memory allows: "
                f"~{8 * train.n_items**2 / 1e9:.1f} GB)"
            )
        gram = gram_matrix(self._history, self.device)
        gram += self.l2 * torch.eye(train.n_items, dtype=gram.dtype, device=self.device)
        inverse = torch.linalg.inv(gram)
        weights = -inverse / torch.diagonal(inverse)
        weights.fill_diagonal_(0.0)
        self.B = weights.to(torch.float32)

    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        return histories.to(self.device, torch.float32) @ self.B
