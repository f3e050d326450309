"""The engine's single-request scoring path equals the model's batched reference path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.models.blend import BlendScorer, UserState
from recsys.models.weighting import EventWeighting
from recsys.recommend.scoring import RequestScorer, neighbour_sums, weigh_history

TYPES = np.array(["view", "click", "add_to_cart", "purchase", "remove_from_cart"], dtype=object)


@pytest.fixture(scope="module")
def scorer(bundle) -> BlendScorer:
    return BlendScorer.from_arrays(bundle.arrays, bundle.config, device="cpu")


def random_states(scorer: BlendScorer, n: int, seed: int = 0) -> list[UserState]:
    rng = np.random.default_rng(seed)
    states = [UserState(None), UserState(0)]
    for row in range(n):
        stored = scorer.user_state(int(rng.integers(scorer.n_users)))
        extra = rng.integers(0, scorer.n_items, int(rng.integers(0, 6)))
        start = float(stored.timestamps[-1]) if len(stored.items) else 1.7e9
        times = start + 60.0 * np.arange(1, len(extra) + 1)
        user = stored.user if row % 3 else None  # every third: an anonymous session
        states.append(
            UserState(
                user,
                np.concatenate([stored.items, extra]),
                np.concatenate([stored.timestamps, times]),
                list(stored.event_types) + list(TYPES[rng.integers(0, len(TYPES), len(extra))]),
            )
        )
    return states


def test_candidate_scores_equal_full_catalogue_scores(scorer):
    fast = RequestScorer(scorer)
    states = random_states(scorer, 40)
    full = scorer.score_states(states).numpy()
    rng = np.random.default_rng(1)
    for row, state in enumerate(states):
        prepared = fast.prepare(state)
        few = rng.choice(scorer.n_items, 7, replace=False)  # the sparse candidate path
        every = np.arange(scorer.n_items)  # the score-everything path
        assert np.allclose(fast.score(prepared, few), full[row, few], rtol=1e-5, atol=1e-5)
        assert np.allclose(fast.score(prepared, every), full[row], rtol=1e-5, atol=1e-5)
        query = scorer.queries(torch.tensor([-1 if state.user is None else state.user]),
                               scorer.state_histories([state])[1])[0].numpy()  # fmt: skip
        assert np.allclose(prepared.query, query, atol=1e-5)


def test_cross_sell_equals_the_model(scorer):
    fast = RequestScorer(scorer)
    for basket in ([0], [3, 7, 11], [5, 5, 9]):
        reference = scorer.cross_sell_scores(basket).numpy()
        got = fast.cross_sell(basket)
        assert np.array_equal(np.isinf(got), np.isinf(reference))
        finite = np.isfinite(reference)
        assert np.allclose(got[finite], reference[finite], atol=1e-5)
    with pytest.raises(ValueError, match="non-empty basket"):
        fast.cross_sell([])
    with pytest.raises(ValueError, match="basket item indices"):
        fast.cross_sell([scorer.n_items])


def test_bad_states_and_candidates_are_clear_errors(scorer):
    fast = RequestScorer(scorer)
    with pytest.raises(ValueError, match="user index"):
        fast.prepare(UserState(scorer.n_users))
    with pytest.raises(ValueError, match="item indices"):
        fast.prepare(UserState(None, [scorer.n_items]))
    with pytest.raises(ValueError, match="candidate item indices"):
        fast.score(UserState(0), [-1])
    with pytest.raises(ValueError, match="not a canonical event type"):
        fast.prepare(UserState(None, [1], [1.0], ["teleport"]))


def test_weigh_history_is_event_weighting_history():
    rng = np.random.default_rng(0)
    taus, lives, caps = (None, 0.5, 2.0, 8.0), (None, 1.0, 7.0), (None, 3, 200)
    for trial in range(400):
        n = int(rng.integers(0, 30))
        items = rng.integers(0, 12, n)
        step = 3600.0 if trial % 2 else 1.0  # hourly stamps: many equal timestamps
        times = None if trial % 5 == 0 else np.round(rng.uniform(0, 9e5, n) / step) * step
        types = None if trial % 7 == 0 else TYPES[rng.integers(0, len(TYPES), n)]
        weightings = [
            EventWeighting(
                position_tau=taus[rng.integers(4)],
                half_life_days=lives[rng.integers(3)],
                max_items=caps[rng.integers(3)],
            )  # fmt: skip
            for _ in range(2)
        ]
        for w, (items_got, weights_got) in zip(
            weightings, weigh_history(weightings, items, times, types), strict=True
        ):
            items_ref, weights_ref = w.history(items, times, types)
            assert np.array_equal(items_got, items_ref)
            assert np.array_equal(weights_got, weights_ref) and weights_got.dtype == np.float32


def test_neighbour_sums_is_a_sparse_neighbour_scatter():
    index = np.array([[1, 2, -1], [2, 0, 3], [0, -1, -1], [1, 1, 2]])
    values = np.array([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]])
    full = neighbour_sums(index, values, np.array([0, 3]), np.array([0.25, 0.75]), None)
    expected = np.array([0.0, 0.25 * 0.5 + 0.75 * 0.6, 0.25 * 0.5 + 0.75 * 0.4, 0.0])
    assert np.allclose(full, expected)
    some = neighbour_sums(index, values, np.array([0, 3]), np.array([0.25, 0.75]), np.array([2]))
    assert np.allclose(some, expected[[2]])
    assert np.array_equal(neighbour_sums(index, values, np.array([], int), np.array([]), None),
                          np.zeros(4))  # fmt: skip


def test_recency_weighted_cross_sell_prior(bundle):
    config = dict(bundle.config) | {"cross_sell_prior": {"half_life_days": 1.0}}
    recent = BlendScorer.from_arrays(bundle.arrays, config, device="cpu")
    plain = BlendScorer.from_arrays(bundle.arrays, bundle.config, device="cpu")
    assert torch.equal(plain.cross_prior, plain.prior)  # off by default: the old behaviour
    prior = recent.cross_prior.numpy()
    assert prior.shape == (recent.n_items,) and prior.min() >= 0 and np.isclose(prior.max(), 1)
    times, items = recent.history.data, recent.history.indices
    latest = set(items[times >= times.max() - 86_400.0])  # bought within the last day
    stale = set(items) - set(items[times >= times.max() - 30 * 86_400.0])  # not for 30 days
    assert latest and stale  # the test shop spans months
    assert min(prior[list(latest)]) > max(prior[list(stale)])
    fast = RequestScorer(recent)
    reference = recent.cross_sell_scores([2, 3]).numpy()
    finite = np.isfinite(reference)
    assert np.allclose(fast.cross_sell([2, 3])[finite], reference[finite], atol=1e-5)
    with pytest.raises(ValueError, match="half_life_days must be positive"):
        BlendScorer.from_arrays(bundle.arrays, config | {"cross_sell_prior": {"half_life_days": 0}})
    with pytest.raises(ValueError, match="unknown setting"):
        BlendScorer.from_arrays(bundle.arrays, config | {"cross_sell_prior": {"days": 3}})


def test_neighbour_sums_on_few_candidates_of_a_large_catalogue():
    rng = np.random.default_rng(4)
    n, m = 5000, 20
    index = rng.integers(-1, n, (n, m))
    values = rng.random((n, m)).astype(np.float32)
    items, weights = rng.integers(0, n, 30), rng.random(30).astype(np.float32)
    full = neighbour_sums(index, values, items, weights, None)
    hot = np.unique(index[items][index[items] >= 0])[:40]  # candidates that do get sums
    for candidates in (np.sort(np.r_[hot, [0, 7, 4999]]), np.r_[hot[::-1], hot[:3], [12]]):
        got = neighbour_sums(index, values, items, weights, candidates)  # sorted, then unsorted
        assert np.allclose(got, full[candidates], atol=1e-6) and got[: len(hot)].any()
