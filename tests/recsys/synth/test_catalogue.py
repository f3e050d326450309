"""Building blocks of the generator: category counts, the within-category sampler, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.synth.catalogue import CategorySampler, build_catalogue, n_categories
from recsys.synth.config import STREAM_USERS, ShopConfig, rng_for
from recsys.synth.customers import sample_rows


@pytest.mark.parametrize(
    ("items", "expected"), [(2, 2), (7, 7), (200, 20), (800, 23), (100_000, 40), (10**6, 40)]
)
def test_category_count_grows_with_the_catalogue(items, expected):
    assert n_categories(items) == expected


def test_sampler_draws_inside_the_category_in_proportion_to_the_weights():
    category_start = np.array([0, 3, 7, 10])
    weights = np.random.default_rng(0).uniform(0.1, 1.0, size=(2, 10))
    sampler = CategorySampler(weights, category_start)
    rng = np.random.default_rng(1)
    n = 200_000
    for row in (0, 1):
        for c in range(3):
            drawn = sampler.sample(np.full(n, row), np.full(n, c), rng.random(n))
            lo, hi = category_start[c], category_start[c + 1]
            assert drawn.min() >= lo and drawn.max() < hi
            observed = np.bincount(drawn - lo, minlength=hi - lo) / n
            expected = weights[row, lo:hi] / weights[row, lo:hi].sum()
            assert np.abs(observed - expected).max() < 0.01
    edge = sampler.sample(np.array([1, 1]), np.array([0, 2]), np.array([0.0, np.nextafter(1, 0)]))
    assert list(edge) == [0, 9]
    with pytest.raises(ValueError, match="positive"):
        CategorySampler(np.zeros((1, 10)), category_start)


def test_sample_rows_inverts_each_rows_distribution():
    probabilities = np.array([[0.5, 0.5, 0.0], [0.0, 0.1, 0.9]])
    cdf = np.cumsum(probabilities, axis=1)
    rng = np.random.default_rng(2)
    rows = np.repeat([0, 1], 50_000)
    drawn = sample_rows(cdf, rows, rng.random(len(rows)))
    assert set(drawn[rows == 0]) == {0, 1}
    assert abs((drawn[rows == 1] == 2).mean() - 0.9) < 0.01


def test_streams_depend_on_seed_stream_and_block_only():
    a = rng_for(5, STREAM_USERS, 3).random(4)
    assert np.array_equal(a, rng_for(5, STREAM_USERS, 3).random(4))
    assert not np.array_equal(a, rng_for(5, STREAM_USERS, 4).random(4))
    assert not np.array_equal(a, rng_for(6, STREAM_USERS, 3).random(4))


def test_catalogue_does_not_depend_on_the_number_of_users():
    small = build_catalogue(ShopConfig(users=1, items=300, seed=4))
    large = build_catalogue(ShopConfig(users=10**6, items=300, seed=4))
    assert small.items_table().equals(large.items_table())
    assert np.array_equal(small.complement, large.complement)
