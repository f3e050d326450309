"""Recall@K / NDCG@K on hand-computed cases, and the ranking loop around them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import EVENTS
from recsys.data.validate import validate_frame
from recsys.eval import evaluate_model, temporal_split
from recsys.eval.evaluate import encode_split, rank_metrics
from recsys.eval.metrics import recall_ndcg_at_k
from recsys.models import PopularityModel

LOG3 = math.log2(3)


def metrics(hits, n_relevant, k):
    recall, ndcg = recall_ndcg_at_k(
        torch.tensor([hits], dtype=torch.bool), torch.tensor([n_relevant]), k
    )
    return float(recall[0]), float(ndcg[0])


@pytest.mark.parametrize(
    ("hits", "n_relevant", "k", "recall", "ndcg"),
    [
        # hits at ranks 1 and 3, 2 relevant: recall 2/2; DCG 1 + 1/log2(4) = 1.5,
        # ideal 1 + 1/log2(3) = 1.6309 -> 0.9197
        ([1, 0, 1, 0], 2, 3, 1.0, 1.5 / (1 + 1 / LOG3)),
        # one hit at rank 2, 5 relevant, k=3: recall 1/min(3,5) = 1/3; DCG 1/log2(3) = 0.6309,
        # ideal over min(3,5)=3 ranks 1 + 0.6309 + 0.5 = 2.1309 -> 0.2961
        ([0, 1, 0], 5, 3, 1 / 3, (1 / LOG3) / (1 + 1 / LOG3 + 0.5)),
        # perfect top-2 with 2 relevant
        ([1, 1, 0, 0], 2, 4, 1.0, 1.0),
        # no hit
        ([0, 0, 0], 1, 3, 0.0, 0.0),
        # hit at rank 1 only counts within k: k=1, 3 relevant -> recall 1/1, ndcg 1
        ([1, 1, 1], 3, 1, 1.0, 1.0),
        # single relevant item at rank 3: recall 1, ndcg 1/log2(4) = 0.5
        ([0, 0, 1], 1, 3, 1.0, 0.5),
    ],
)
def test_hand_computed_values(hits, n_relevant, k, recall, ndcg):
    got_recall, got_ndcg = metrics(hits, n_relevant, k)
    assert got_recall == pytest.approx(recall, abs=1e-12)
    assert got_ndcg == pytest.approx(ndcg, abs=1e-12)


def test_metric_argument_errors():
    hits, n_rel = torch.ones(1, 3, dtype=torch.bool), torch.tensor([1])
    with pytest.raises(ValueError, match="k must be positive"):
        recall_ndcg_at_k(hits, n_rel, 0)
    with pytest.raises(ValueError, match="fewer than k=4"):
        recall_ndcg_at_k(hits, n_rel, 4)
    with pytest.raises(ValueError, match="at least one relevant item"):
        recall_ndcg_at_k(hits, torch.tensor([0]), 2)


def _split(rows):
    raw = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return temporal_split(validate_frame(raw, EVENTS))


# u trains on i1..i4 (t=1..4) and holds out i5, which nobody trains on: u is not evaluated.
# v trains on i1 and holds out i2 (a training item, via u): v is evaluated.
# w trains on i1 and holds out "new", which nobody trains on: w is not evaluated.
ROWS = [("u", f"i{k}", k) for k in range(1, 6)] + [
    ("v", "i1", 1),
    ("v", "i2", 2),
    ("w", "i1", 1),
    ("w", "new", 2),
]


def fixed_scores(order):
    """A scorer that ranks items in ``order`` (item index list, best first) for everyone."""

    def score(users: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(len(users), len(order))
        for rank, item in enumerate(order):
            scores[:, item] = len(order) - rank
        return scores

    return score


def test_rank_metrics_on_a_hand_made_split():
    train, test = encode_split(_split(ROWS))
    assert train.item_ids.tolist() == ["i1", "i2", "i3", "i4"]  # the only candidates
    assert test["user_id"].tolist() == ["v"]
    # Ranking i1 > i2 > ...: v's own training item i1 is excluded, so i2 comes first.
    result = rank_metrics(fixed_scores([0, 1, 2, 3]), train, test, ks=(1, 2))
    assert result["n_eval_users"] == 1
    assert result["recall@1"] == 1.0 and result["ndcg@1"] == 1.0


def test_own_training_items_are_never_candidates():
    rows = [("u", "a", 1), ("u", "b", 2), ("u", "c", 3), ("u", "d", 4), ("u", "e", 5)]
    rows += [("v", x, 1) for x in "abcde"] + [("v", "f", 2)]  # v trains on a..e
    train, test = encode_split(_split(rows))
    u = train.user_ids.tolist().index("u")
    test_u = test[test["u"] == u]
    assert test_u["item_id"].tolist() == ["e"]
    # The scorer loves u's training items a..d most; all are masked, so e is ranked first.
    result = rank_metrics(fixed_scores([0, 1, 2, 3, 4]), train, test_u, ks=(1,))
    assert result["recall@1"] == 1.0 and result["ndcg@1"] == 1.0


def test_averages_over_evaluated_users():
    # Two evaluated users; one hit at rank 1, the other at rank 2 of k=2:
    # recall@2 = (1 + 1) / 2 = 1, ndcg@2 = (1 + 1/log2(3)) / 2; recall@1 = 0.5.
    rows = [("u", "a", 1), ("u", "b", 2), ("v", "a", 1), ("v", "c", 2), ("x", "b", 1)]
    rows += [("x", "c", 2), ("x", "a", 3)]  # x makes b and c training items
    train, test = encode_split(_split(rows))
    test = test[test["user_id"].isin(["u", "v"])]
    a, b, c = (train.item_ids.tolist().index(x) for x in "abc")
    result = rank_metrics(fixed_scores([a, b, c]), train, test, ks=(1, 2))
    assert result["n_eval_users"] == 2
    assert result["recall@1"] == pytest.approx(0.5)
    assert result["recall@2"] == pytest.approx(1.0)
    assert result["ndcg@2"] == pytest.approx((1 + 1 / LOG3) / 2)


def test_k_larger_than_the_items_is_a_clear_error():
    train, test = encode_split(_split(ROWS))
    with pytest.raises(ValueError, match=r"k=20 exceeds the 4 items that occur in training"):
        rank_metrics(fixed_scores([0, 1, 2, 3]), train, test, ks=(10, 20))


def test_evaluate_model_reports_the_contract_fields():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", t) for t, (u, i) in enumerate(rng.integers(0, 30, (600, 2)))]
    result = evaluate_model(PopularityModel(device="cpu"), _split(rows), ks=(5, 10))
    assert set(result) == {
        "model", "n_users", "n_items", "n_train", "n_test", "n_eval_users", "fit_seconds",
        "recall@5", "ndcg@5", "recall@10", "ndcg@10",
    }  # fmt: skip
    assert result["model"] == "pop" and result["n_users"] == 30
    assert 0 < result["n_eval_users"] <= 30
    assert 0 <= result["ndcg@5"] <= 1 and result["recall@5"] <= result["recall@10"]
