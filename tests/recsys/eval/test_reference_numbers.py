"""Protocol self-check: ML-100K reference numbers only an exact implementation reproduces."""

import pytest

from recsys.data.adapters import load_dataset
from recsys.eval import evaluate_model, temporal_split
from recsys.models import EASEModel, PopularityModel


@pytest.fixture(scope="module")
def ml100k_split(ml100k_path):
    return temporal_split(load_dataset(ml100k_path).events)


def test_split_sizes(ml100k_split):
    assert len(ml100k_split.train) + len(ml100k_split.test) == 100_000
    assert ml100k_split.test["user_id"].nunique() == 943


def test_pop_reference(ml100k_split):
    result = evaluate_model(PopularityModel(device="cpu"), ml100k_split, ks=(20,))
    assert result["ndcg@20"] == pytest.approx(0.1129, abs=0.002)


def test_ease_reference(ml100k_split):
    result = evaluate_model(EASEModel(l2=200, device="cpu"), ml100k_split, ks=(20,))
    assert result["ndcg@20"] == pytest.approx(0.2057, abs=0.002)
    assert result["n_eval_users"] == 943
