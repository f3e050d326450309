"""Two-tower retrieval model: user and item embeddings for inner-product search.

- item tower: item id embedding + category and price-bucket embeddings (when the items table
  has them);
- user tower: user id embedding + embeddings of the user's categorical / bucketed attributes;
- context tower: one embedding per item, trained to predict the items that *follow* it in users'
  sequences against the same item tower, so a recency-weighted mean of a user's recent items'
  context embeddings is a query in the same space as the trained user vectors.

Serving-time query of a user state (known user or not, plus recent events)::

    q = user_weight * user_vector[u] + sum_i w_i * context[i]     (w: EventWeighting, sum 1)

so an event just ingested moves the query; an unknown user gets the session part alone, and a
state without any event gets the mean user vector (a popularity-like answer). Training runs on
``recsys.device.resolve_device`` with index tensors on the device, one ``randperm`` shuffle per
epoch and in-batch sampled softmax with logQ popularity correction (or BPR).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from recsys.data.interactions import Interactions
from recsys.models.base import Recommender
from recsys.models.features import item_features, user_features
from recsys.models.two_tower_train import TrainConfig, train_towers
from recsys.models.weighting import EventWeighting, normalise_rows

logger = logging.getLogger(__name__)


def build_queries(user_vectors, context_vectors, mean_user, users, histories, user_weight):
    """``user_weight * user_vectors[u] + normalised(history) @ context_vectors`` per row.

    Unknown users (index -1 or ``users=None``) get the session part alone; a row without any
    history gets ``mean_user`` (a popularity-like query).
    """
    device = context_vectors.device
    histories = normalise_rows(histories.to(device, torch.float32))
    query = histories @ context_vectors
    if users is None:
        users = torch.full((histories.shape[0],), -1, dtype=torch.int64)
    users = torch.as_tensor(users, dtype=torch.int64, device=device).reshape(-1)
    if len(users) != histories.shape[0]:
        raise ValueError(f"{len(users)} users for {histories.shape[0]} histories")
    empty = histories.sum(dim=1) == 0
    known = (users >= 0) & ~empty  # a user without events has an untrained vector: skip it
    if bool(known.any()):
        query[known] += user_weight * user_vectors[users[known]]
    if bool(empty.any()):
        query[empty] = mean_user
    return query


class TwoTowerModel(Recommender):
    """Two-tower retrieval model (see the module docstring).

    Parameters
    ----------
    dim : int
        Embedding size.
    epochs, batch_size, lr, l2 : training hyper-parameters (``batch_size=None``: chosen from the
        data size, at least 32 steps per epoch).
    loss : {"softmax", "bpr"}
        In-batch sampled softmax with logQ correction, or BPR with uniform negatives.
    negatives : int
        Sampled-softmax chunk: each sample is contrasted with this many in-batch items.
    context_weight : float
        Weight of the next-item (context tower) loss; 0 trains no context tower.
    window : int
        A context item is drawn from the ``window`` positions before the target.
    user_weight : float
        Weight of the trained user vector in the serving query (the session part has weight 1).
    weighting : EventWeighting
        Event-type weights of the training samples and recency weights of the session part.
    seed : int
        Seeds initialisation and shuffling (deterministic per seed on a given device).
    progress : bool
        Show a tqdm bar over epochs.
    tf32 : bool
        On CUDA, train with TensorFloat-32 matmuls (faster; ~1e-3 relative rounding).
    """

    name = "twotower"

    def __init__(
        self,
        dim: int = 64,
        epochs: int = 30,
        batch_size: int | None = None,
        lr: float = 0.01,
        l2: float = 1e-4,
        loss: str = "softmax",
        negatives: int = 1024,
        context_weight: float = 1.0,
        window: int = 10,
        user_weight: float = 0.5,
        weighting: EventWeighting | None = None,
        seed: int = 0,
        progress: bool = False,
        tf32: bool = True,
        device="auto",
    ) -> None:
        super().__init__(device)
        self.config = TrainConfig(
            dim=dim, epochs=epochs, batch_size=batch_size, lr=lr, l2=l2, loss=loss,
            negatives=negatives, context_weight=context_weight, window=window, seed=seed,
            progress=progress, tf32=tf32,
        )  # fmt: skip
        if user_weight < 0:
            raise ValueError(f"user_weight must be >= 0, got {user_weight}")
        self.user_weight = float(user_weight)
        self.weighting = weighting or EventWeighting(position_tau=2.0)
        self.user_vectors: torch.Tensor | None = None
        self.item_vectors: torch.Tensor | None = None
        self.context_vectors: torch.Tensor | None = None
        self.training_stats: dict = {}

    def _fit(self, train: Interactions, items=None, users=None) -> None:
        item_codes = item_features(items, train.item_ids)
        user_codes = user_features(users, train.user_ids)
        started = time.perf_counter()
        result = train_towers(
            train, self.weighting, item_codes, user_codes, self.config, self.device
        )
        seconds = time.perf_counter() - started
        self.user_vectors, self.item_vectors, self.context_vectors = result.vectors
        self.item_feature_config = item_codes.config()
        self.user_feature_config = user_codes.config()
        self.feature_tables = result.feature_tables
        self.training_stats = {
            "samples": result.samples,
            "seconds": round(seconds, 3),
            "loop_seconds": round(result.loop_seconds, 3),
            "samples_per_second": round(result.samples / max(result.loop_seconds, 1e-9), 1),
            "final_loss": result.final_loss,
            "device": str(self.device),
        }
        logger.info("two-tower trained: %s", self.training_stats)
        self._history = self.weighting.matrix(train)
        self._mean_user = self.user_vectors.mean(dim=0)

    # ------------------------------------------------------------------ queries
    def query_vectors(self, users: torch.Tensor | None, histories: torch.Tensor) -> torch.Tensor:
        """Serving queries (b, dim) from user indices (-1 / None = unknown) and weighted histories.

        ``histories`` are dense (b, n_items) weights (e.g. from ``EventWeighting.history``);
        they are normalised to sum 1 here.
        """
        return build_queries(
            self.user_vectors, self.context_vectors, self._mean_user, users, histories,
            self.user_weight,
        )  # fmt: skip

    def score_queries(self, queries: torch.Tensor) -> torch.Tensor:
        return queries.to(self.device, torch.float32) @ self.item_vectors.T

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Retrieval-path scores of known users (trained vector + recency-weighted history)."""
        return self.score_queries(self.query_vectors(users, self.histories(users)))

    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores of unknown users from their weighted histories alone."""
        return self.score_queries(self.query_vectors(None, histories))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Exported embeddings (float32 numpy): user, item and context vectors."""
        if self.item_vectors is None:
            from recsys.models.base import NotFittedError

            raise NotFittedError("twotower is not fitted; call fit() first")
        return {
            "user_vectors": self.user_vectors.cpu().numpy(),
            "item_vectors": self.item_vectors.cpu().numpy(),
            "context_vectors": self.context_vectors.cpu().numpy(),
        }
