"""Two-tower retrieval model: training, determinism, serving-time queries, features, parity."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.models.two_tower import TwoTowerModel
from recsys.models.weighting import EventWeighting

from .conftest import make_interactions, make_items

FAST = {"epochs": 8, "dim": 16, "lr": 0.05, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted():
    train = make_interactions()
    return train, TwoTowerModel(**FAST).fit(train)


def test_exports_finite_embeddings_and_training_stats(fitted):
    train, model = fitted
    arrays = model.to_arrays()
    assert arrays["user_vectors"].shape == (train.n_users, 16)
    assert arrays["item_vectors"].shape == (train.n_items, 16)
    assert arrays["context_vectors"].shape == (train.n_items, 16)
    assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in arrays.values())
    stats = model.training_stats
    assert stats["samples"] == len(train) * 8 and stats["samples_per_second"] > 0


def test_learns_the_planted_next_item(fitted):
    train, model = fitted
    # a session of one item: its follower in the chain ranks among the items that follow it
    # within the context window (10), far above the other 20 items
    ranks = []
    for item in range(train.n_items):
        history = torch.zeros(1, train.n_items)
        history[0, item] = 1.0
        scores = model.score_histories(history)[0]
        scores[item] = -torch.inf
        follower = (item + 1) % train.n_items
        ranks.append(int((scores > scores[follower]).sum()))
    assert np.mean(np.array(ranks) < 10) >= 0.9


def test_deterministic_per_seed():
    train = make_interactions(n_users=20)
    a = TwoTowerModel(**FAST, seed=3).fit(train).to_arrays()
    b = TwoTowerModel(**FAST, seed=3).fit(train).to_arrays()
    c = TwoTowerModel(**FAST, seed=4).fit(train).to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["item_vectors"], c["item_vectors"])


def test_query_blends_user_vector_with_recent_items(fitted):
    train, model = fitted
    history = torch.zeros(1, train.n_items)
    history[0, 3] = 1.0
    session = model.context_vectors[3]
    cold = model.query_vectors(None, history)[0]
    assert torch.allclose(cold, session)  # unknown user: the session part alone
    known = model.query_vectors(torch.tensor([5]), history)[0]
    assert torch.allclose(known, session + model.user_weight * model.user_vectors[5])
    # a new event moves the query
    history[0, 7] = 1.0
    assert not torch.allclose(model.query_vectors(torch.tensor([5]), history)[0], known)
    # no history at all (known or not): the mean user vector, never zeros or NaN
    empty = torch.zeros(2, train.n_items)
    queries = model.query_vectors(torch.tensor([-1, 5]), empty)
    assert torch.allclose(queries, model.user_vectors.mean(dim=0).expand(2, -1))


def test_side_features_are_used():
    train = make_interactions(n_users=20)
    items = make_items(train.item_ids)
    users = pd.DataFrame(
        {
            "user_id": train.user_ids,
            "country": ["NL", "DE"] * (train.n_users // 2),
            "attributes": ['{"tier": "gold"}', '{"tier": "none"}'] * (train.n_users // 2),
        }
    )
    model = TwoTowerModel(**FAST).fit(train, items=items, users=users)
    assert model.item_feature_config["names"] == ["category", "price"]
    assert set(model.user_feature_config["names"]) == {"country", "tier"}
    assert "item_feature_0" in model.feature_tables


def test_bpr_loss_trains():
    train = make_interactions(n_users=20)
    model = TwoTowerModel(**FAST, loss="bpr").fit(train)
    assert np.isfinite(model.training_stats["final_loss"])
    assert torch.isfinite(model.score(torch.arange(4))).all()


def test_weighted_event_types_and_all_zero_weight_data():
    train = make_interactions(n_users=10, event_types=("view", "purchase", "remove_from_cart"))
    assert torch.isfinite(TwoTowerModel(**FAST).fit(train).score(torch.arange(3))).all()
    opens = make_interactions(n_users=5, event_types=("open",))
    with pytest.raises(ValueError, match="weight 0"):
        TwoTowerModel(**FAST).fit(opens)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"loss": "hinge"}, "loss"), ({"dim": 0}, "dim"), ({"batch_size": -1}, "batch_size"),
     ({"lr": 0}, "lr"), ({"user_weight": -1}, "user_weight")],
)  # fmt: skip
def test_bad_hyper_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TwoTowerModel(device="cpu", **kwargs)


def test_single_user_single_item():
    train = make_interactions(n_users=1, n_items=1, length=1)
    model = TwoTowerModel(**FAST).fit(train)
    assert torch.isfinite(model.score(torch.tensor([0]))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_gpu_matches_cpu():
    train = make_interactions()
    kwargs = FAST | {"weighting": EventWeighting(position_tau=2.0), "tf32": False}
    cpu = TwoTowerModel(**kwargs).fit(train)
    gpu = TwoTowerModel(**(kwargs | {"device": "cuda"})).fit(train)
    # same init and (small data) the same CPU-generated shuffles: equal within float tolerance
    for name, value in cpu.to_arrays().items():
        assert np.allclose(value, gpu.to_arrays()[name], atol=2e-3), name
    users = torch.arange(train.n_users)
    top_cpu = torch.topk(cpu.score(users), 5).indices
    top_gpu = torch.topk(gpu.score(users).cpu(), 5).indices
    assert (top_cpu == top_gpu).float().mean() > 0.9


def test_sampled_softmax_matches_a_direct_computation():
    from recsys.models.two_tower_train import Towers, _softmax_losses

    torch.manual_seed(0)
    towers = Towers(4, 6, 8, [], [], seed=0)
    items = torch.tensor([0, 1, 1, 2, 5, 1, 3])
    queries = torch.randn(2, len(items), 8)
    log_q = torch.log(torch.tensor([0.3, 0.2, 0.1, 0.1, 0.2, 0.1]))
    codes = torch.zeros(6, 0, dtype=torch.int64)
    got = _softmax_losses(queries, items, towers, codes, log_q, chunk=3)[0].detach()
    keys = towers.item[items].detach()
    for t in range(2):
        for i in range(len(items)):
            lo = i // 3 * 3
            cols = [j for j in range(lo, min(lo + 3, len(items))) if j == i or items[j] != items[i]]
            logits = torch.stack([queries[t, i] @ keys[j] - log_q[items[j]] for j in cols])
            expected = torch.logsumexp(logits, 0) - logits[cols.index(i)]
            assert float(got[t, i]) == pytest.approx(float(expected), abs=1e-5)
