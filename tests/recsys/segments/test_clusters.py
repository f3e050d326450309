"""Embedding clusters: torch k-means, k by silhouette, stable ids across retrains, the batch job."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recsys.bundle import ServingBundle, load_bundle
from recsys.data.frame import pd
from recsys.errors import InvalidInputError
from recsys.segments import kmeans as km
from recsys.segments.clusters import (
    SESSION_GAP_S,
    STATE_NAME,
    choose_k,
    cluster_users,
    fit_mask,
    taste_vectors,
)
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService
from recsys.store import Store
from recsys_cli.main import app, exit_code
from tests.utils.factories import make_bundle, make_shop


def blobs(n_per: int = 60, k: int = 4, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 6
    points = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    return torch.tensor(points, dtype=torch.float32), np.repeat(np.arange(k), n_per)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_separated_blobs_and_silhouette_picks_k():
    x, truth = blobs()
    centroids, labels, inertia = km.kmeans(x, 4, iters=50, seed=0)
    assert centroids.shape == (4, 8) and inertia > 0
    assert same_partition(labels.numpy(), truth)
    k, scores = choose_k(x, ks=range(2, 8))
    assert k == 4 and scores[4] == max(scores.values())
    with pytest.raises(ValueError, match="k must be between 1"):
        km.kmeans(x, 0)


def test_kmeans_runs_more_than_one_iteration():
    x, _ = blobs(k=6, seed=3)
    one = km.kmeans(x, 6, iters=1, seed=1)[2]
    many = km.kmeans(x, 6, iters=50, seed=1)[2]
    assert many <= one


def test_match_undoes_a_permutation():
    current = np.random.default_rng(1).normal(size=(5, 3))
    previous = current[[3, 0, 4, 1, 2]] + 0.01
    assert km.match(previous, current).tolist() == [1, 3, 4, 0, 2]


def _bundle(vectors: np.ndarray) -> ServingBundle:
    ids = np.array([f"u{i}" for i in range(len(vectors))], dtype=object)
    return ServingBundle(
        "default", {}, {"user_vectors": vectors}, np.array([]), ids, pd.DataFrame()
    )


def test_ids_survive_a_retrain_in_a_rotated_space():
    x, truth = blobs(n_per=40, k=5, dim=6, seed=2)
    first = cluster_users(_bundle(x.numpy()), k=5, device="cpu")
    assert sorted(first.ids) == [0, 1, 2, 3, 4]
    assert same_partition(first.labels, truth)
    # a retrain: another embedding space (rotation) and another k-means seed
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(6, 6)))[0]
    previous = dict(zip(first.user_ids, first.labels.tolist(), strict=True))
    second = cluster_users(
        _bundle((x.numpy() @ rotation).astype(np.float32)), k=5, previous=previous, seed=9
    )
    assert second.labels.tolist() == first.labels.tolist()
    # one more cluster than before: the old ids stay, the new one gets a fresh id
    third = cluster_users(_bundle(x.numpy()), k=6, previous=previous, seed=4)
    assert set(third.ids) == {0, 1, 2, 3, 4, 5}


def test_centroids_are_fitted_on_long_histories_and_everyone_is_assigned():
    x, truth = blobs(n_per=60, k=4, dim=8, seed=6)
    # 120 customers with one event each, scattered at random: only the 240 with long
    # histories place the centroids, and the short ones are assigned to the nearest
    short = np.random.default_rng(7).normal(size=(120, 8)).astype(np.float32)
    vectors = np.concatenate([x.numpy(), short])
    lengths = np.array([10] * len(x) + [1] * len(short))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    bundle = _bundle(vectors)
    bundle.arrays["history_indptr"] = indptr
    bundle.arrays["history_items"] = np.zeros(indptr[-1], dtype=np.int64)
    mask = fit_mask(bundle, np.asarray(bundle.user_ids).astype(str))
    assert mask.tolist() == (lengths >= 10).tolist()
    result = cluster_users(bundle, k=4, device="cpu")
    assert len(result.labels) == len(vectors)
    assert same_partition(result.labels[: len(x)], truth)
    unit = short / np.linalg.norm(short, axis=1, keepdims=True)
    nearest = ((unit[:, None, :] - result.centroids[None]) ** 2).sum(-1).argmin(1)
    assert result.labels[len(x) :].tolist() == np.asarray(result.ids)[nearest].tolist()
    assert fit_mask(_bundle(vectors), np.asarray(bundle.user_ids).astype(str)).all()


def _shopper_bundle(histories: list[list[tuple[str, float]]]) -> ServingBundle:
    """Four items (a1, a2 in category A; b1, b2 in B) with orthogonal unit vectors, customers
    with the same user vector and the given ``(item, unix seconds)`` histories."""
    names = ["a1", "a2", "b1", "b2"]
    items = pd.DataFrame({"item_id": names, "category": ["A", "A", "B", "B"]})
    lengths = [len(h) for h in histories]
    arrays = {
        "user_vectors": np.full((len(histories), 4), 0.5, dtype=np.float32),
        "item_vectors": np.eye(4, dtype=np.float32),
        "history_indptr": np.concatenate([[0], np.cumsum(lengths)]),
        "history_items": np.array([names.index(i) for h in histories for i, _ in h]),
        "history_timestamps": np.array([t for h in histories for _, t in h], dtype=np.float64),
    }
    ids = np.array([f"u{i}" for i in range(len(histories))], dtype=object)
    return ServingBundle("default", {}, arrays, np.array(names, dtype=object), ids, items)


def test_taste_vectors_separate_choices_within_categories_and_count_each_session_once():
    bundle = _shopper_bundle(
        [
            [("a1", 0.0), ("b1", 60.0)],  # same categories as u1, other items in them
            [("a2", 0.0), ("b2", 60.0)],
            [("a1", 0.0), ("a2", 60.0), ("b1", 120.0)],  # one session
            [("a1", 0.0), ("a2", 60.0), ("b1", 120.0 + SESSION_GAP_S)],  # b1 a trip of its own
        ]
    )
    ids, x = taste_vectors(bundle)
    assert ids.tolist() == ["u0", "u1", "u2", "u3"]
    # U + R = (1, 0, 1, 0) for u0 and S points the same way: the user vector's tie is broken.
    half = np.sqrt(0.5)
    np.testing.assert_allclose(x[0], [half, 0, half, 0], atol=1e-6)
    np.testing.assert_allclose(x[1], [0, half, 0, half], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)
    # Same items: only the sessions differ, and the trip to b1 alone weighs more than a third.
    assert x[3][2] > x[2][2] and x[3][0] < x[2][0]
    # Without histories the user vectors alone are clustered.
    plain = _bundle(np.eye(3, dtype=np.float32))
    np.testing.assert_allclose(taste_vectors(plain)[1], np.eye(3), atol=1e-6)


def test_zero_vectors_are_left_out_and_bad_k_is_refused():
    x, _ = blobs(n_per=10, k=2)
    vectors = x.numpy().copy()
    vectors[0] = 0.0  # an erased user's vector
    result = cluster_users(_bundle(vectors), k=2, device="cpu")
    assert "u0" not in set(result.user_ids) and len(result.labels) == len(vectors) - 1
    with pytest.raises(InvalidInputError, match="^k: must be between 1 and 19"):
        cluster_users(_bundle(vectors), k=50)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("shop") / "shop", users=200, items=100)


@pytest.fixture(scope="module")
def bundle_dir(shop, tmp_path_factory):
    return make_bundle(shop, tmp_path_factory.mktemp("bundle") / "bundle")


def _load_events(store, shop) -> None:
    events = pd.read_parquet(shop / "events.parquet")
    store.items.upsert(
        pd.read_parquet(shop / "items.parquet")[["item_id", "category"]].to_dict("records")
    )
    rows = events[["user_id", "item_id", "event_type", "timestamp", "value"]].to_dict("records")
    for start in range(0, len(rows), 2000):
        store.events.append(rows[start : start + 2000])


def test_refresh_clusters_customers_and_cluster_segments_follow(store, shop, bundle_dir):
    _load_events(store, shop)
    service = SegmentService(store)
    service.create("cluster 1", {"type": "cluster", "cluster_id": 1}, segment_id="c1")
    summary = refresh(store, engine=service.engine, bundle=load_bundle(bundle_dir), k=3)
    made = summary["clusters"]
    assert made["k"] == 3 and made["users"] == 200 and made["customers_updated"] == 200
    state = store.segments.get_state(STATE_NAME)
    assert state["ids"] and len(state["centroids"]) == 3
    described = {c["cluster_id"]: c for c in state["clusters"]}
    assert sorted(described) == [0, 1, 2]
    assert sum(c["size"] for c in described.values()) == 200
    one = described[1]
    assert one["top_categories"] and one["top_items"] and one["average_spend"] >= 0
    # Buyers by group, the rest 'no purchase': shares rounded to 4 places add up to 1.
    mix = one["rfm_mix"]
    assert abs(sum(mix.values()) - 1.0) <= 0.00005 * len(mix) + 1e-12
    assert store.segments.size("c1") == one["size"]


def test_cli_refresh_with_a_bundle(tmp_path, shop, bundle_dir):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(url)
    _load_events(store, shop)
    store.close()
    args = ["segments", "refresh", "--database-url", url, "--json"]
    result = CliRunner().invoke(app, [*args, "--model-uri", str(bundle_dir), "--k", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clusters"]["k"] == 2 and summary["customers"] == 200
    bad = CliRunner().invoke(app, [*args, "--model-uri", str(tmp_path / "nowhere")])
    assert isinstance(bad.exception, InvalidInputError)  # main() maps it to exit 2
    assert exit_code(bad.exception) == 2 and str(bad.exception).startswith("model_uri: ")
