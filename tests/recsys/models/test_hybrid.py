"""The default served model: consistency of every scoring path, export, degenerate data."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.interactions import Interactions
from recsys.models import MODELS, HybridModel, RetrievalModel, UserState
from recsys.models.base import NotFittedError

from .conftest import make_events, make_interactions, make_items

FAST = {"epochs": 6, "dim": 16, "two_tower": {"lr": 0.05}, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted():
    train = make_interactions(
        n_users=50, event_types=("view", "add_to_cart", "purchase"), session_length=4
    )
    model = HybridModel(**FAST).fit(train, items=make_items(train.item_ids))
    return train, model


def test_registered_as_default():
    assert MODELS["default"] is HybridModel and HybridModel.name == "default"
    assert MODELS["retrieval"] is RetrievalModel


def test_fit_reports_the_validation_search(fitted):
    _, model = fitted
    report = model.report
    assert set(report["params"]) >= {"user_weight", "query_tau", "history_tau", "w_pop"}
    assert report["search"]["validation_users"] >= 10
    assert 0.0 <= report["search"]["blend_ndcg@20"] <= 1.0


def test_score_paths_agree(fitted):
    train, model = fitted
    users = torch.arange(6)
    full = model.score(users)
    assert full.shape == (6, train.n_items) and torch.isfinite(full).all()
    states = [model.scorer.user_state(int(u)) for u in users]
    assert torch.allclose(model.score_states(states), full, atol=1e-5)
    candidates = np.array([4, 0, 17, 9])
    for row, state in enumerate(states[:3]):
        got = model.score_candidates(state, candidates)
        assert np.allclose(got, full[row, candidates].numpy(), atol=1e-5)


def test_retrieval_path_is_query_dot_items(fitted):
    train, model = fitted
    scorer = model.scorer
    state = scorer.user_state(3)
    query = model.query_vector(state)
    assert query.shape == (scorer.dim,) and query.dtype == np.float32
    expected = scorer.item_vectors.numpy() @ query
    assert np.allclose(model.retrieval_scores(torch.tensor([3]))[0].numpy(), expected, atol=1e-5)
    assert np.allclose(
        RetrievalModel.score(model, torch.tensor([3]))[0].numpy(), expected, atol=1e-5
    )


def test_a_new_event_changes_the_answer(fitted):
    _, model = fitted
    state = model.scorer.user_state(2)
    before_q, before = model.query_vector(state), model.score_states([state])[0]
    now = float(state.timestamps[-1]) + 60.0
    after_state = UserState(
        2,
        np.append(state.items, 11),
        np.append(state.timestamps, now),
        np.append(state.event_types, "add_to_cart"),
    )
    assert not np.allclose(model.query_vector(after_state), before_q)
    assert not torch.allclose(model.score_states([after_state])[0], before)


def test_cold_and_empty_states_are_finite(fitted):
    train, model = fitted
    cold = UserState(None, [1, 2], [10.0, 20.0], ["view", "purchase"])
    empty = UserState(None)
    scores = model.score_states([cold, empty])
    assert torch.isfinite(scores).all()
    assert np.isfinite(model.query_vector(empty)).all()
    histories = torch.zeros(2, train.n_items)
    histories[0, 5] = 1.0
    assert torch.isfinite(model.score_histories(histories)).all()


def test_similar_items_and_cross_sell_exclude_their_inputs(fitted):
    train, model = fitted
    items, scores = model.similar_items(4, 5)
    assert len(items) == 5 and 4 not in items and np.all(np.diff(scores) <= 0)
    items, _ = model.cross_sell([1, 2, 3], 10)
    assert not set(items) & {1, 2, 3} and len(set(items)) == 10
    everything, _ = model.cross_sell([0], train.n_items + 10)
    assert len(everything) == train.n_items - 1  # all but the basket, never more
    with pytest.raises(ValueError, match="non-empty basket"):
        model.cross_sell([], 5)
    with pytest.raises(ValueError, match="k must be positive"):
        model.similar_items(0, 0)
    with pytest.raises(ValueError, match="basket item indices"):
        model.cross_sell([train.n_items], 5)


def test_bad_states_are_clear_errors(fitted):
    train, model = fitted
    with pytest.raises(ValueError, match="user index"):
        model.score_states([UserState(train.n_users + 1)])
    with pytest.raises(ValueError, match="item indices"):
        model.score_states([UserState(None, [train.n_items])])
    with pytest.raises(ValueError, match="candidate item indices"):
        model.score_candidates(UserState(0), [-1])


def test_export_round_trip_is_plain_numpy_and_json(fitted, tmp_path):
    train, model = fitted
    arrays, config = model.to_arrays()
    for name, value in arrays.items():
        assert isinstance(value, np.ndarray) and value.dtype != object, name
        np.save(tmp_path / f"{name}.npy", value, allow_pickle=False)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = {p.stem: np.load(p, allow_pickle=False) for p in tmp_path.glob("*.npy")}
    again = HybridModel.from_arrays(loaded, json.loads((tmp_path / "config.json").read_text()))
    users = torch.arange(train.n_users)
    assert torch.allclose(again.score(users), model.score(users), atol=1e-6)
    assert np.array_equal(again.cross_sell([1], 5)[0], model.cross_sell([1], 5)[0])
    assert list(again.scorer.item_ids) == list(train.item_ids)


def test_not_fitted_and_bad_params():
    with pytest.raises(NotFittedError):
        HybridModel(device="cpu").score(torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown default-model params"):
        HybridModel(params={"w_magic": 1.0})
    with pytest.raises(ValueError, match="two_tower must not set"):
        HybridModel(two_tower={"dim": 8})
    with pytest.raises(ValueError, match="format_version"):
        HybridModel.from_arrays({}, {"format_version": 0})
    with pytest.raises(ValueError, match="missing: user_vectors"):
        HybridModel.from_arrays({}, {"format_version": 1})


def _fit(frame: pd.DataFrame, **kwargs) -> tuple[Interactions, HybridModel]:
    train = Interactions.from_frame(frame)
    return train, HybridModel(**(FAST | kwargs)).fit(train)


@pytest.mark.parametrize(
    "frame",
    [
        make_events(n_users=1, n_items=6, length=6),  # one user
        make_events(n_users=6, n_items=1, length=1),  # one item
        make_events(n_users=12, n_items=8, length=4, event_types=("view",)),  # one event type
        make_events(n_users=3, n_items=4, length=2),  # too few users to validate on
    ],
    ids=["one-user", "one-item", "one-type", "tiny"],
)
def test_degenerate_data_gives_a_sane_model(frame):
    train, model = _fit(frame)
    scores = model.score(torch.arange(train.n_users))
    assert torch.isfinite(scores).all()
    assert np.isfinite(model.query_vector(UserState(None))).all()


def test_users_without_items_score_like_popularity():
    frame = make_events(n_users=20, n_items=10, length=5)
    ids = np.append(frame["user_id"].unique(), "nobody")
    train = Interactions.from_frame(frame, user_ids=ids)
    model = HybridModel(**FAST).fit(train)
    scores = model.score(torch.tensor([train.n_users - 1]))
    assert torch.isfinite(scores).all()


def test_unusable_data_is_a_clear_error():
    empty = Interactions.from_frame(make_events(n_users=2).iloc[:0])
    with pytest.raises(ValueError, match="zero interactions"):
        HybridModel(**FAST).fit(empty)
    opens = Interactions.from_frame(make_events(n_users=4, event_types=("open",)))
    with pytest.raises(ValueError, match="weight 0"):
        HybridModel(**FAST).fit(opens)


def test_ease_is_skipped_beyond_its_item_limit():
    train, model = _fit(make_events(n_users=20, n_items=12, length=5), ease_max_items=5)
    assert model.scorer.ease is None and "ease_weights" not in model.to_arrays()[0]
    assert torch.isfinite(model.score(torch.arange(4))).all()


def test_forget_user_erases_vector_and_history():
    train = make_interactions(n_users=20)
    model = HybridModel(**FAST).fit(train)
    arrays, config = model.to_arrays()
    for value in arrays.values():
        value.setflags(write=False)  # as a memory-mapped bundle
    scorer = HybridModel.from_arrays(arrays, config).scorer
    stranger = scorer.score_states([UserState(None)])[0]
    removed = scorer.forget_user(4)
    assert removed == 10 and len(scorer.user_state(4).items) == 0
    assert float(scorer.user_vectors[4].abs().sum()) == 0.0
    assert torch.allclose(scorer.score_users(torch.tensor([4]))[0], stranger, atol=1e-6)
    assert len(scorer.user_state(5).items) == 10  # neighbours untouched
    assert scorer.forget_user(4) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_gpu_matches_cpu():
    train = make_interactions(n_users=30, event_types=("view", "purchase"))
    kwargs = FAST | {"tune": False, "two_tower": {"lr": 0.05, "tf32": False}}
    cpu = HybridModel(**kwargs).fit(train)
    gpu = HybridModel(**(kwargs | {"device": "cuda"})).fit(train)
    users = torch.arange(train.n_users)
    assert torch.allclose(cpu.score(users), gpu.score(users).cpu(), atol=1e-3, rtol=1e-3)
    state = cpu.scorer.user_state(3)
    assert np.allclose(cpu.query_vector(state), gpu.query_vector(state), atol=1e-3)
    assert np.array_equal(cpu.cross_sell([1, 2], 5)[0], gpu.cross_sell([1, 2], 5)[0])
