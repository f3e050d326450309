"""The mixture model that refines the embedding clusters with what customers did."""

from __future__ import annotations

import json

import numpy as np
import torch

from recsys.data.frame import pd
from recsys.segments import mixture
from recsys.segments.clusters import attribute_codes, cluster_users, taste_vectors
from tests.recsys.segments.test_clusters import _shopper_bundle, same_partition

# Items 0-3 in category 0, items 4-7 in category 1; group 0 picks items 0, 1, 4, 5 and group 1
# items 2, 3, 6, 7: the same categories, other items within them.
ITEM_CATEGORY = np.array([0, 0, 0, 0, 1, 1, 1, 1])
PICKS = {0: [0, 1, 4, 5], 1: [2, 3, 6, 7]}


def _evidence(groups: np.ndarray, customers: int | None = None) -> mixture.Evidence:
    """Three picks per customer of ``groups``, each a session of its own."""
    rng = np.random.default_rng(0)
    items = [(c, i) for c, g in enumerate(groups) for i in rng.choice(PICKS[g], 3, replace=False)]
    who, picked = (np.array(v) for v in zip(*items, strict=True))
    n = len(groups) if customers is None else customers
    return mixture.Evidence.from_pairs(
        n, (who, ITEM_CATEGORY[picked]), (who, picked), ITEM_CATEGORY
    )


def test_refine_moves_the_customers_k_means_misplaced_to_the_cluster_their_items_say():
    groups = np.repeat([0, 1], 30)
    evidence = _evidence(groups)
    # Taste vectors that say nothing (all the same) and k-means labels with 6 customers wrong.
    x = torch.full((len(groups), 4), 0.5)
    start = groups.copy()
    start[[0, 5, 10, 30, 40, 50]] ^= 1
    labels = mixture.refine(evidence, x, torch.from_numpy(start), k=2)
    assert labels.tolist() == groups.tolist()


def test_the_taste_vector_decides_for_a_customer_without_a_history():
    groups = np.repeat([0, 1], 30)
    evidence = _evidence(groups[:-1], customers=len(groups))  # the last one: no history
    x = torch.nn.functional.one_hot(torch.from_numpy(groups), 2).float()
    start = groups.copy()
    start[-1] = 0  # k-means got it wrong; its vector points at group 1
    labels = mixture.refine(evidence, x, torch.from_numpy(start), k=2)
    assert labels.tolist() == groups.tolist()


def test_cluster_users_refines_with_the_stored_histories_and_centroids_are_cluster_means():
    # Same user vectors for everyone; the histories split the customers in two.
    histories = []
    for c in range(40):
        group = c % 2
        a, b = ("a1", "b1") if group == 0 else ("a2", "b2")
        histories.append([(a, 0.0), (b, 7200.0)])
    bundle = _shopper_bundle(histories)
    truth = np.arange(40) % 2
    refined = cluster_users(bundle, k=2, device="cpu")
    assert same_partition(refined.labels, truth)
    _, x = taste_vectors(bundle)
    for row, cluster in enumerate(refined.ids):
        mean = x[refined.labels == cluster].mean(axis=0)
        np.testing.assert_allclose(refined.centroids[row], mean, atol=1e-6)
    plain = cluster_users(bundle, k=2, device="cpu", refine=False)
    assert len(plain.labels) == 40


def test_an_attribute_shared_with_a_cluster_decides_for_a_customer_without_a_history():
    groups = np.repeat([0, 1], 30)
    # Group 1 mostly from one country, group 0 from another; the last customer has no history
    # and a taste vector that says nothing, but the country of group 1.
    country = np.where(groups == 1, 2, 1)
    country[[3, 33]] = 0  # two customers without a country: no evidence either way
    evidence = _evidence(groups[:-1], customers=len(groups))
    evidence.attributes = [torch.from_numpy(country)]
    x = torch.full((len(groups), 4), 0.5)
    start = groups.copy()
    start[-1] = 0
    labels = mixture.refine(evidence, x, torch.from_numpy(start), k=2)
    assert labels.tolist() == groups.tolist()


def test_attribute_codes_keep_the_categorical_attributes_with_few_values():
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(120)],
            "country": ["DE", "FR", None] * 40,
            "attributes": [
                {"band": "18-24" if i % 2 else "65+", "signup": f"2024-01-{i:03d}", "age": i}
                if i % 3
                else json.dumps({"band": "25-34"})  # JSON text as in a shop's files
                for i in range(120)
            ],
        }
    )
    ids = np.array([f"u{i}" for i in range(120)] + ["unknown"])
    codes = attribute_codes(users, ids)
    # country and band; the 80 signup dates are too many values, age is a number
    assert len(codes) == 2
    country, band = codes
    assert country[0] != country[1] and country[2] == 0 and country[-1] == 0
    assert len({band[0], band[1], band[2]}) == 3 and band[-1] == 0 and (band[:-1] > 0).all()
    assert attribute_codes(None, np.array(["u0"])) == []
