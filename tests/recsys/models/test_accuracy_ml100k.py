"""The accuracy bar on ML-100K under the fixed protocol (slow: fits the default model once)."""

import pytest

from recsys.data.adapters import load_dataset
from recsys.eval import evaluate_model, temporal_split
from recsys.eval.evaluate import encode_split, rank_metrics
from recsys.models import HybridModel

EASE_NDCG20 = 0.2057


@pytest.mark.slow
def test_default_model_and_retrieval_path_clear_the_bar(ml100k_path):
    dataset = load_dataset(ml100k_path)
    split = temporal_split(dataset.events)
    model = HybridModel(device="cpu")
    result = evaluate_model(model, split, ks=(20,), items=dataset.items, users=dataset.users)
    assert result["ndcg@20"] >= 1.15 * EASE_NDCG20
    train, test = encode_split(split)
    retrieval = rank_metrics(model.retrieval_scores, train, test, ks=(20,))
    assert retrieval["ndcg@20"] >= EASE_NDCG20
