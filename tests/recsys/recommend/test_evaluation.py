"""The served path as an evaluable model: same numbers as the model's full scoring when exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.eval import evaluate_model, temporal_split
from recsys.eval.evaluate import encode_split, rank_metrics
from recsys.models.base import NotFittedError
from recsys.recommend.evaluation import ServedModel
from tests.utils.factories import FAST_MODEL, make_shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = make_shop(tmp_path_factory.mktemp("served") / "shop", users=200, items=120, seed=5)
    return pd.read_parquet(path / "events.parquet"), pd.read_parquet(path / "items.parquet")


@pytest.mark.parametrize(
    "engine", [{}, {"exact_scoring_limit": 0, "candidates": 1000}], ids=["exact", "ann-covering"]
)
def test_served_metrics_equal_full_scoring(shop, engine):
    events, items = shop
    split = temporal_split(events)
    served = ServedModel(engine=engine, device="cpu", seed=0, **FAST_MODEL)
    result = evaluate_model(served, split, ks=(10, 20), items=items)
    assert result["model"] == "default" and result["n_eval_users"] > 50
    train, test = encode_split(split)
    full = rank_metrics(served.model.score, train, test, ks=(10, 20))
    for key in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"):
        assert result[key] == pytest.approx(full[key], abs=1e-6), key


def test_scores_are_engine_candidates_and_minus_inf_elsewhere(shop):
    events, items = shop
    split = temporal_split(events)
    train, _ = encode_split(split)
    served = ServedModel(engine={"exact_scoring_limit": 0, "candidates": 10}, k=5, device="cpu",
                         seed=0, **FAST_MODEL).fit(train, items=items)  # fmt: skip
    users = torch.arange(6)
    scores = served.score(users)
    assert scores.shape == (6, train.n_items)
    seen = train.matrix().dense(users.numpy()) > 0
    finite = torch.isfinite(scores)
    assert not (finite & seen).any()  # the user's own items are never candidates
    assert (finite.sum(dim=1) >= 5).all() and (~finite).any()  # a candidate subset, not all
    full = served.model.score(users)
    assert np.allclose(scores[finite].numpy(), full[finite].numpy(), atol=1e-5)


def test_bad_use_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted"):
        ServedModel(device="cpu").score(torch.tensor([0]))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ServedModel(k=0)
