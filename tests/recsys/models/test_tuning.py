"""Validation carved from training data, and the significance-gated coordinate search."""

import numpy as np
import pytest

from recsys.eval import temporal_split
from recsys.models.tuning import (
    Validator,
    coordinate_search,
    significant_gain,
    validation_split,
)

from .conftest import make_events, make_interactions


def test_validation_holds_out_each_users_last_fifth():
    frame = make_events(n_users=30, n_items=40, length=10)
    train = make_interactions(n_users=30, n_items=40, length=10)
    split = validation_split(train, max_users=1000)
    assert len(split.inner) + len(split.held_out) == len(train)
    protocol = temporal_split(frame)
    pairs = zip(split.held_out.users, split.held_out.items, strict=True)
    held = {(train.user_ids[u], train.item_ids[i]) for u, i in pairs}
    assert held == set(zip(protocol.test["user_id"], protocol.test["item_id"], strict=True))
    inner_pairs = set(zip(split.inner.users.tolist(), split.inner.items.tolist(), strict=True))
    held_pairs = set(zip(split.held_out.users.tolist(), split.held_out.items.tolist(), strict=True))
    assert not inner_pairs & held_pairs


def test_validation_samples_users_deterministically():
    train = make_interactions(n_users=40)
    a = validation_split(train, max_users=10, seed=1)
    b = validation_split(train, max_users=10, seed=1)
    assert len(a) == 10 and np.array_equal(a.users, b.users)
    # users outside the sample keep all their events in the inner data
    outside = np.setdiff1d(np.arange(train.n_users), a.users)
    assert np.bincount(a.inner.users, minlength=40)[outside].tolist() == [10] * len(outside)


def test_validator_ndcg_of_a_perfect_and_a_hopeless_scorer():
    train = make_interactions(n_users=20, n_items=25)
    split = validation_split(train)
    validator = Validator(split)

    def perfect(rows, users):
        return split.relevant.dense(rows).float()

    def hopeless(rows, users):
        return -split.relevant.dense(rows).float()

    assert validator.ndcg(perfect).mean() == pytest.approx(1.0)
    assert validator.ndcg(hopeless).mean() < 0.5


def test_search_moves_only_on_clear_gains():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 500)

    def objective(p):
        gain = 0.5 if p["a"] == 2 else 0.0  # a real effect on "a"
        jitter = rng.normal(0, 1, 500) * 0.01 if p["b"] != 0 else 0.0  # noise only on "b"
        return noise + gain + jitter

    grid = {"a": [1, 2], "b": [1, 2]}
    best, value, trials = coordinate_search(objective, {"a": 0, "b": 0}, grid, min_z=3.0)
    assert best == {"a": 2, "b": 0}
    assert value == pytest.approx(noise.mean() + 0.5)
    assert len(trials) >= 5


def test_significant_gain_is_paired():
    base = np.linspace(0, 1, 100)
    assert significant_gain(base + 0.01, base, 2.0)
    assert not significant_gain(base, base, 0.0)
    assert not significant_gain(np.zeros(0), np.zeros(0), 1.0)


def test_no_usable_validation_is_a_clear_error():
    train = make_interactions(n_users=3, n_items=30, length=1)  # every pair would be held out
    with pytest.raises(ValueError, match="validation"):
        validation_split(train)
