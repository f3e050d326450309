"""Item co-visitation / co-purchase: pair semantics, top-M arrays, scoring and cross-sell."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.interactions import Interactions
from recsys.models.covisit import CoVisitationModel
from recsys.models.weighting import EventWeighting

from .conftest import make_events, make_interactions


def _frame(rows):
    return Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type", "session_id"])
    )


def _weights(model, src, dst) -> float:
    index, values = model.neighbours([src], model.index.shape[1])
    hit = index[0] == dst
    return float(values[0][hit].sum())


def test_directional_counts_only_what_follows():
    train = _frame(
        [("u", "a", 1, "view", ""), ("u", "b", 2, "view", ""), ("u", "c", 3, "view", "")]
    )
    model = CoVisitationModel(directional=True, window=5, normalise="none", device="cpu").fit(train)
    a, b, c = 0, 1, 2
    w = EventWeighting().event_weights["view"] ** 2
    assert _weights(model, a, b) == pytest.approx(w)
    assert _weights(model, a, c) == pytest.approx(w / 2)  # 1 / distance
    assert _weights(model, b, a) == 0.0 and _weights(model, c, a) == 0.0


def test_symmetric_and_simultaneous_pairs_go_both_ways():
    train = _frame(
        [
            ("u", "a", 1, "purchase", ""),
            ("u", "b", 1, "purchase", ""),
            ("u", "c", 2, "purchase", ""),
        ]
    )
    directional = CoVisitationModel(normalise="none", device="cpu").fit(train)
    assert _weights(directional, 1, 0) > 0  # same timestamp (one basket): both directions
    assert _weights(directional, 2, 0) == 0.0
    symmetric = CoVisitationModel(directional=False, normalise="none", device="cpu").fit(train)
    assert _weights(symmetric, 2, 0) > 0
    assert _weights(symmetric, 2, 0) == pytest.approx(_weights(symmetric, 0, 2))


def test_session_mode_pairs_only_within_a_session():
    train = _frame(
        [
            ("u", "a", 1, "purchase", "s1"),
            ("u", "b", 2, "purchase", "s1"),
            ("u", "c", 3, "purchase", "s2"),
        ]
    )
    model = CoVisitationModel(mode="auto", directional=False, device="cpu").fit(train)
    assert model.fitted_mode == "session"
    assert _weights(model, 0, 1) > 0 and _weights(model, 1, 2) == 0.0


def test_session_mode_without_sessions_is_a_clear_error(chain):
    with pytest.raises(ValueError, match="session_id"):
        CoVisitationModel(mode="session", device="cpu").fit(chain)


def test_rows_are_normalised_and_top_m_is_kept(chain):
    model = CoVisitationModel(neighbours=3, window=4, device="cpu").fit(chain)
    assert model.index.shape == (chain.n_items, 3)
    sums = model.values.sum(dim=1)
    assert torch.all(sums <= 1.0 + 1e-5)
    ordered = model.values[:, :-1] >= model.values[:, 1:]
    assert bool(ordered.all())
    # the planted chain: each item's strongest follower is the next item
    index, _ = model.neighbours(np.arange(chain.n_items), 1)
    ids = chain.item_ids
    nxt = [(int(ids[i][1:]) + 1) % chain.n_items for i in range(chain.n_items)]
    assert [int(ids[j][1:]) for j in index[:, 0]] == nxt


def test_blocked_build_equals_single_block():
    train = make_interactions(n_users=60, n_items=25, length=12, seed=3)
    one = CoVisitationModel(window=6, directional=False, device="cpu").fit(train)
    many = CoVisitationModel(window=6, directional=False, max_pairs=97, device="cpu").fit(train)
    assert torch.equal(one.index, many.index)
    assert torch.allclose(one.values, many.values)


def test_scoring_baskets_and_neighbours(chain):
    model = CoVisitationModel(device="cpu").fit(chain)
    scores = model.score(torch.arange(5))
    assert scores.shape == (5, chain.n_items) and torch.isfinite(scores).all()
    basket = model.score_basket([0, 1])
    assert torch.isinf(basket[[0, 1]]).all() and torch.isfinite(basket[2:]).all()
    index, values = model.neighbours([0], chain.n_items + 5)
    assert index.shape == (1, chain.n_items + 5) and (index[0, -5:] == -1).all()
    with pytest.raises(ValueError, match="non-empty basket"):
        model.score_basket([])
    with pytest.raises(ValueError, match="k must be positive"):
        model.neighbours([0], 0)
    with pytest.raises(ValueError, match="item indices"):
        model.neighbours([chain.n_items], 2)


def test_degenerate_one_item_and_one_user_give_finite_scores():
    one_item = Interactions.from_frame(make_events(n_users=3, n_items=1, length=1))
    model = CoVisitationModel(device="cpu").fit(one_item)
    assert torch.isfinite(model.score(torch.arange(3))).all()
    one_user = Interactions.from_frame(make_events(n_users=1, n_items=5, length=5))
    model = CoVisitationModel(device="cpu").fit(one_user)
    assert torch.isfinite(model.score(torch.tensor([0]))).all()


def test_zero_weight_events_make_no_pairs():
    train = _frame([("u", "a", 1, "open", ""), ("u", "b", 2, "open", "")])
    model = CoVisitationModel(normalise="none", device="cpu").fit(train)
    assert float(model.values.abs().sum()) == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"mode": "basket"}, {"normalise": "l2"}, {"window": 0}, {"neighbours": -1}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CoVisitationModel(device="cpu", **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_gpu_matches_cpu(chain):
    cpu = CoVisitationModel(device="cpu").fit(chain)
    gpu = CoVisitationModel(device="cuda").fit(chain)
    assert torch.allclose(cpu.values, gpu.values.cpu(), atol=1e-6)
    assert torch.allclose(cpu.score(torch.arange(10)), gpu.score(torch.arange(10)).cpu(), atol=1e-5)
