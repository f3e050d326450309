"""The shared model API: fit on interactions, score users or ad-hoc histories, save and load."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import torch

from recsys.data.interactions import Interactions, SparseRows
from recsys.device import resolve_device
from recsys.errors import ConflictError, InvalidInputError

logger = logging.getLogger(__name__)


class NotFittedError(ConflictError, RuntimeError):
    """A model was used before ``fit``."""


class Recommender(ABC):
    """Base class of every model.

    Subclasses implement ``_fit`` and ``score_histories``; users known at fit time are scored from
    their training history, so a model that scores histories also serves cold users and sessions.
    """

    name = "base"

    def __init__(self, device: str | torch.device = "auto") -> None:
        self.device = resolve_device(device)
        self.n_items = 0
        self._history: SparseRows | None = None  # training histories, users x items

    def fit(self, train: Interactions, items=None, users=None) -> Recommender:
        """Fit on ``train``; ``items``/``users`` are the optional catalogue and customer tables."""
        if len(train) == 0:
            raise InvalidInputError(f"{self.name}: cannot fit on zero interactions")
        self.n_items = train.n_items
        self._history = train.matrix()
        self._fit(train, items=items, users=users)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, items=None, users=None) -> None: ...

    @abstractmethod
    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores (b, n_items) for dense (b, n_items) weighted histories on ``self.device``."""

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores (b, n_items) for users known at fit time (indices into the training users)."""
        return self.score_histories(self.histories(users))

    def histories(self, users: torch.Tensor) -> torch.Tensor:
        """Dense training histories of ``users`` on the model's device."""
        if self._history is None:
            raise NotFittedError(f"{self.name} is not fitted; call fit() first")
        return self._history.dense(users.to("cpu").numpy(), self.device)


def gram_matrix(matrix: SparseRows, device: torch.device) -> torch.Tensor:
    """X^T X accumulated over dense row blocks on ``device`` (float64 for accuracy)."""
    n_items = matrix.shape[1]
    gram = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    for rows in matrix.blocks(device=device):
        rows = rows.to(torch.float64)
        gram += rows.T @ rows
    return gram
