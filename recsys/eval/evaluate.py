"""Fit a model on the train split and score it on the test split under the fixed protocol."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

try:  # the bare GPU benchmark machines may lack tqdm (benchmarks/gpu_check.py imports this)
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover

    def tqdm(iterable, **_):
        return iterable


from recsys.data.frame import pd
from recsys.data.interactions import Interactions, encode_ids, sorted_vocabulary
from recsys.errors import InvalidInputError
from recsys.eval.metrics import recall_ndcg_at_k
from recsys.eval.protocol import TemporalSplit

logger = logging.getLogger(__name__)


def encode_split(split: TemporalSplit) -> tuple[Interactions, pd.DataFrame]:
    """Train interactions over (all users) x (train items), and the test rows that count."""
    users = sorted_vocabulary(pd.concat([split.train["user_id"], split.test["user_id"]]))
    items = sorted_vocabulary(split.train["item_id"])
    train = Interactions.from_frame(split.train, user_ids=users, item_ids=items)
    test = split.test.assign(
        u=encode_ids(split.test["user_id"], users),
        i=encode_ids(split.test["item_id"], items),
    )
    return train, test[test["i"] >= 0]


def rank_metrics(
    score_batch,
    train: Interactions,
    test: pd.DataFrame,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
    progress: bool = False,
) -> dict[str, float]:
    """Average Recall@K / NDCG@K for ``score_batch(user_index_tensor) -> (b, n_items) scores``."""
    max_k = max(ks)
    if max_k > train.n_items:
        raise InvalidInputError(
            f"k={max_k} exceeds the {train.n_items} items that occur in training; "
            "pass smaller cut-offs (--k)"
        )
    seen = train.matrix()
    eval_users = np.unique(test["u"].to_numpy())
    test_sorted = test.sort_values("u")
    indptr = np.searchsorted(test_sorted["u"].to_numpy(), eval_users, side="left")
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    batches = range(0, len(eval_users), batch_size)
    for start in tqdm(batches, desc="evaluating", disable=not progress, unit="batch"):
        batch = eval_users[start : start + batch_size]
        users_t = torch.from_numpy(batch)
        scores = score_batch(users_t).detach().to("cpu", torch.float32).clone()
        scores[seen.dense(batch) > 0] = -torch.inf
        top = torch.topk(scores, max_k, dim=1).indices
        relevant = torch.zeros(len(batch), train.n_items, dtype=torch.bool)
        end = start + len(batch)
        hi = indptr[end] if end < len(eval_users) else len(test_sorted)
        block = test_sorted.iloc[indptr[start] : hi]
        local = np.searchsorted(batch, block["u"].to_numpy())
        relevant[torch.as_tensor(local), torch.as_tensor(block["i"].to_numpy().copy())] = True
        hits = relevant.gather(1, top)
        n_rel = relevant.sum(dim=1)
        for k in ks:
            recall, ndcg = recall_ndcg_at_k(hits, n_rel, k)
            sums[f"recall@{k}"] += float(recall.sum())
            sums[f"ndcg@{k}"] += float(ndcg.sum())
    n = max(len(eval_users), 1)
    return {key: value / n for key, value in sums.items()} | {"n_eval_users": int(len(eval_users))}


def evaluate_model(
    model,
    split: TemporalSplit,
    ks: Sequence[int] = (10, 20),
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    progress: bool = False,
) -> dict:
    """Fit ``model`` on ``split.train`` and report the protocol's metrics on ``split.test``.

    Returns one JSON-ready dict: ``model, n_users, n_items, n_train, n_test, n_eval_users,
    recall@K, ndcg@K, fit_seconds``.
    """
    train, test = encode_split(split)
    started = time.perf_counter()
    model.fit(train, items=items, users=users)
    fit_seconds = time.perf_counter() - started
    logger.info("fitted %s in %.2fs", model.name, fit_seconds)
    metrics = rank_metrics(model.score, train, test, ks=ks, progress=progress)
    return {
        "model": model.name,
        "n_users": int(train.n_users),
        "n_items": int(train.n_items),
        "n_train": int(len(split.train)),
        "n_test": int(len(split.test)),
        **{key: round(value, 6) for key, value in metrics.items() if "@" in key},
        "n_eval_users": metrics["n_eval_users"],
        "fit_seconds": round(fit_seconds, 3),
    }
