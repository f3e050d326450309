"""The mixture model that refines the embedding clusters with what customers did."""

from __future__ import annotations

import numpy as np
import torch

from recsys.segments import mixture
from recsys.segments.clusters import cluster_users, taste_vectors
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
