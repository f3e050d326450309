"""Validation carved from the training data, and the small searches that pick hyper-parameters.

The fixed protocol (``recsys.eval.temporal_split``) is applied again to the training
interactions: each validation user's last 20% of (first-occurrence) pairs are held out, every
other event stays in the inner training set. Models are fitted on the inner set, scored on the
held-out pairs with the protocol's candidate rule (items of the inner training set, minus the
user's own), and the best values are then used to refit on all training data. The test split is
never seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys.data.frame import pd
from recsys.data.interactions import Interactions, SparseRows
from recsys.eval import temporal_split
from recsys.eval.metrics import recall_ndcg_at_k

logger = logging.getLogger(__name__)

MAX_VALIDATION_USERS = 3000


@dataclass
class ValidationSplit:
    """Inner training interactions (same id vocabularies) and the held-out pairs to rank."""

    inner: Interactions
    users: np.ndarray  # validation users (indices), sorted
    relevant: SparseRows  # users x items, held-out pairs whose item occurs in ``inner``
    seen: SparseRows  # users x items, the users' inner-training items
    held_out: Interactions  # the held-out pairs (with sessions when the data has them)

    def __len__(self) -> int:
        return len(self.users)


def _subset(train: Interactions, mask: np.ndarray) -> dict:
    sessions = None if train.sessions is None else np.asarray(train.sessions)[mask]
    return {
        "users": train.users[mask],
        "items": train.items[mask],
        "timestamps": train.timestamps[mask],
        "event_types": np.asarray(train.event_types, dtype=object)[mask],
        "sessions": sessions,
    }


def validation_split(
    train: Interactions, max_users: int = MAX_VALIDATION_USERS, seed: int = 0
) -> ValidationSplit:
    """Hold out the last 20% of pairs of up to ``max_users`` users (seeded sample) of ``train``.

    Raises
    ------
    ValueError
        When no user has a held-out item that also occurs in the inner training data.
    """
    counts = np.bincount(train.users, minlength=train.n_users)
    candidates = np.flatnonzero(counts >= 1)  # one-pair users mirror the test's cold users
    if len(candidates) == 0:
        raise ValueError("validation: no user has an interaction to hold out")
    rng = np.random.default_rng(seed)
    if len(candidates) > max_users:
        candidates = np.sort(rng.choice(candidates, max_users, replace=False))
    chosen = np.zeros(train.n_users, dtype=bool)
    chosen[candidates] = True
    in_split = chosen[train.users]
    part = _subset(train, in_split)
    frame = pd.DataFrame(
        {
            "user_id": train.user_ids[part["users"]].astype(str),
            "item_id": train.item_ids[part["items"]].astype(str),
            "timestamp": part["timestamps"],
            "event_type": part["event_types"],
        }
    )
    if part["sessions"] is not None:
        frame["session_id"] = part["sessions"]
    split = temporal_split(frame)
    held = Interactions.from_frame(split.train, user_ids=train.user_ids, item_ids=train.item_ids)
    rest = _subset(train, ~in_split)
    inner = Interactions(
        user_ids=train.user_ids,
        item_ids=train.item_ids,
        users=np.concatenate([rest["users"], held.users]),
        items=np.concatenate([rest["items"], held.items]),
        timestamps=np.concatenate([rest["timestamps"], held.timestamps]),
        event_types=np.concatenate([rest["event_types"], held.event_types]),
        sessions=(
            None
            if rest["sessions"] is None or held.sessions is None
            else np.concatenate([rest["sessions"], held.sessions])
        ),
    )
    held_out = split.test
    if "session_id" in frame:  # the protocol's test table has no sessions: take the pair's first
        first = frame.sort_values("timestamp", kind="mergesort").drop_duplicates(
            ["user_id", "item_id"]
        )
        held_out = held_out.merge(
            first[["user_id", "item_id", "session_id"]], on=["user_id", "item_id"], how="left"
        )
    test = Interactions.from_frame(held_out, user_ids=train.user_ids, item_ids=train.item_ids)
    in_inner = np.bincount(inner.items, minlength=train.n_items) > 0
    test_keep = in_inner[test.items]
    users = np.unique(test.users[test_keep])
    if len(users) == 0:
        raise ValueError("validation: no held-out item occurs in the inner training data")
    relevant = _rows(test.users[test_keep], test.items[test_keep], users, train.n_items)
    seen = _rows(inner.users, inner.items, users, train.n_items)
    logger.info("validation split: %d users, %d held-out pairs", len(users), test_keep.sum())
    return ValidationSplit(inner, users, relevant, seen, test)


def _rows(users, items, keep_users, n_items) -> SparseRows:
    """CSR rows (in ``keep_users`` order) of the (user, item) pairs of the kept users."""
    local = np.searchsorted(keep_users, users)
    local = np.clip(local, 0, len(keep_users) - 1)
    mask = keep_users[local] == users
    key = np.unique(local[mask] * n_items + items[mask])
    rows, cols = key // n_items, key % n_items
    indptr = np.zeros(len(keep_users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(keep_users)), out=indptr[1:])
    return SparseRows(indptr, cols, np.ones(len(cols), np.float32), (len(keep_users), n_items))


class Validator:
    """NDCG@k of score functions on a ``ValidationSplit`` (batched; component scores cached)."""

    def __init__(self, split: ValidationSplit, k: int = 20, batch_size: int = 1024) -> None:
        self.split = split
        self.k = k
        self.batch_size = batch_size
        n_items = split.inner.n_items
        self.candidate = torch.from_numpy(np.bincount(split.inner.items, minlength=n_items) > 0)
        if int(self.candidate.sum()) < k:
            self.k = max(1, int(self.candidate.sum()))

    def batches(self):
        """(local row range, user index tensor) per batch of validation users."""
        for start in range(0, len(self.split), self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, len(self.split)))
            yield rows, torch.from_numpy(self.split.users[rows])

    def ndcg(self, score_batch: Callable[[np.ndarray, torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Per-user NDCG@k of ``score_batch(local_rows, users) -> (b, n_items)`` scores."""
        out = []
        for rows, users in self.batches():
            scores = score_batch(rows, users).detach().to("cpu", torch.float32).clone()
            out.append(self.batch_ndcg(rows, scores).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def batch_ndcg(self, rows: np.ndarray, scores: torch.Tensor) -> torch.Tensor:
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        scores[:, ~self.candidate] = -torch.inf
        scores[self.split.seen.dense(rows) > 0] = -torch.inf
        top = torch.topk(scores, self.k, dim=1).indices
        relevant = self.split.relevant.dense(rows) > 0
        _, ndcg = recall_ndcg_at_k(relevant.gather(1, top), relevant.sum(dim=1), self.k)
        return ndcg


def coordinate_search(
    objective: Callable[[dict], np.ndarray],
    start: dict,
    grid: dict[str, Sequence],
    rounds: int = 2,
    min_z: float = 1.0,
) -> tuple[dict, float, list[dict]]:
    """Maximise the mean of ``objective`` one parameter at a time over ``grid``.

    ``objective`` returns one value per validation unit (user or basket); a move is accepted only
    when its paired mean gain exceeds ``min_z`` standard errors, so noise on small or
    popularity-dominated data does not move the parameters away from ``start``. Returns the
    best parameters, their mean objective and the trial log.
    """
    best = dict(start)
    best_values = np.asarray(objective(best), dtype=np.float64)
    trials = [{"params": dict(best), "value": float(best_values.mean())}]
    for _ in range(rounds):
        improved = False
        for name, values in grid.items():
            for value in values:
                if value == best[name]:
                    continue
                candidate = best | {name: value}
                result = np.asarray(objective(candidate), dtype=np.float64)
                trials.append({"params": dict(candidate), "value": float(result.mean())})
                if significant_gain(result, best_values, min_z):
                    best, best_values, improved = candidate, result, True
        if not improved:
            break
    value = float(best_values.mean())
    logger.info("search: best %s = %.5f after %d trials", best, value, len(trials))
    return best, value, trials


def significant_gain(new: np.ndarray, old: np.ndarray, min_z: float) -> bool:
    """Whether ``new`` beats ``old`` (paired per unit) by more than ``min_z`` standard errors."""
    diff = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    if len(diff) == 0:
        return False
    gain = diff.mean()
    stderr = diff.std() / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return bool(gain > 1e-9 and gain > min_z * stderr)
