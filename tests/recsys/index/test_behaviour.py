"""The shared behaviour suite: every VectorIndex backend available here passes the same tests."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recsys.index import UnknownIdError, VectorIndex

DIM = 16


def random_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """Gaussian float32 vectors (ties in inner products are practically impossible)."""
    return rng.standard_normal((n, dim)).astype(np.float32)


def clustered_vectors(rng: np.random.Generator, n: int, dim: int = DIM, clusters: int = 20):
    """A gaussian mixture with varying norms, like trained item embeddings (fixed centres)."""
    centres = np.random.default_rng(0).standard_normal((clusters, dim)).astype(np.float32)
    members = rng.integers(0, clusters, n)
    vectors = centres[members] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    return (vectors * rng.lognormal(0.0, 0.3, (n, 1))).astype(np.float32)


def item_ids(n: int, start: int = 0) -> list[str]:
    return [f"item-{i}" for i in range(start, start + n)]


def brute_force(vectors: np.ndarray, ids: list, queries: np.ndarray, k: int, exclude=None):
    """Reference top-k by inner product in float64 numpy: (scores, ids)."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    if exclude is not None:
        drop = [i for i, v in enumerate(ids) if v in exclude]
        scores[:, drop] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, 1)
    names = np.array(ids, dtype=object)[order]
    names[np.isneginf(top)] = None
    return top, names


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


@pytest.fixture
def catalogue(rng):
    vectors = random_vectors(rng, 400)
    return item_ids(400), vectors


@pytest.fixture
def built(backend, catalogue):
    ids, vectors = catalogue
    return backend.make().build(ids, vectors)


def assert_matches(index, backend, vectors, ids, queries, k, exclude=None, atol=1e-4):
    scores, found = index.search(queries, k, exclude=exclude)
    ref_scores, ref_ids = brute_force(vectors, ids, queries, k, exclude)
    assert scores.dtype == np.float32 and scores.shape == (len(queries), k)
    assert found.dtype == object and found.shape == (len(queries), k)
    if backend.exact:
        assert found.tolist() == ref_ids.tolist()
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=atol)
    else:
        assert recall(found, ref_ids) >= 0.9
    return scores, found


# ------------------------------------------------------------------------------ search results
def test_search_matches_brute_force(backend, built, catalogue, rng):
    ids, vectors = catalogue
    queries = random_vectors(rng, 9)
    assert_matches(built, backend, vectors, ids, queries, k=10)
    assert len(built) == 400 and built.dim == DIM


def test_single_query_is_a_batch_of_one(built, catalogue, rng):
    query = random_vectors(rng, 1)
    one_scores, one_ids = built.search(query[0], 5)
    batch_scores, batch_ids = built.search(query, 5)
    assert one_ids.shape == (1, 5)
    assert one_ids.tolist() == batch_ids.tolist()
    np.testing.assert_allclose(one_scores, batch_scores)


def test_ann_recall_high_on_clustered_data(backend, rng):
    vectors = clustered_vectors(rng, 3000)
    ids = item_ids(3000)
    index = backend.make().build(ids, vectors)
    queries = clustered_vectors(rng, 100)
    found = index.search(queries, 10)[1]
    assert recall(found, brute_force(vectors, ids, queries, 10)[1]) >= 0.95


def test_vector_and_contains(built, catalogue):
    ids, vectors = catalogue
    np.testing.assert_allclose(built.vector("item-17"), vectors[17], rtol=1e-3, atol=1e-3)
    assert built.contains("item-17") and "item-17" in built
    assert not built.contains("nope") and "nope" not in built
    assert sorted(built.ids()) == sorted(ids)
    with pytest.raises(UnknownIdError, match="'nope' is not in the index"):
        built.vector("nope")


def test_describe(backend, built):
    info = built.describe()
    assert info["backend"] == backend.cls.backend
    assert info["size"] == 400 and info["dim"] == DIM
    assert info["kind"] in ("exact", "flat", "hnsw", "ivf")
    assert info["device"].startswith("cuda" if "cuda" in str(backend.kwargs) else "cpu")
    assert isinstance(info["params"], dict)


# --------------------------------------------------------------- mutations without a rebuild
def _no_rebuild(caplog) -> None:
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("recsys.index")]
    assert not [m for m in messages if "rebuild" in m or m.startswith("built")], messages


def test_add_new_items_without_rebuild(backend, built, catalogue, rng, caplog):
    ids, vectors = catalogue
    queries = random_vectors(rng, 5)
    new = (queries * 10.0).astype(np.float32)  # each new item is the best match of one query
    before = getattr(built, "_index", None)
    with caplog.at_level(logging.INFO, logger="recsys.index"):
        built.add(["new-0", "new-1", "new-2", "new-3", "new-4"], new)
    _no_rebuild(caplog)
    assert getattr(built, "_index", None) is before  # FAISS: the same index object, grown
    assert len(built) == 405
    top = built.search(queries, 1)[1][:, 0]
    assert top.tolist() == [f"new-{i}" for i in range(5)]
    all_ids = ids + [f"new-{i}" for i in range(5)]
    assert_matches(built, backend, np.vstack([vectors, new]), all_ids, queries, k=10, atol=1e-3)


def test_update_replaces_the_vector(backend, built, catalogue, rng, caplog):
    ids, vectors = catalogue
    query = random_vectors(rng, 1)
    with caplog.at_level(logging.INFO, logger="recsys.index"):
        built.add(["item-3"], query * 10.0)
    _no_rebuild(caplog)
    assert len(built) == 400
    np.testing.assert_allclose(built.vector("item-3"), query[0] * 10.0, rtol=1e-3)
    scores, found = built.search(query, 20)
    assert found[0, 0] == "item-3"
    assert len(set(found[0])) == 20  # the old vector is gone: no duplicate id
    updated = vectors.copy()
    updated[3] = query[0] * 10.0
    assert_matches(built, backend, updated, ids, random_vectors(rng, 6), k=10)


def test_remove_without_rebuild(backend, built, catalogue, rng, caplog):
    ids, vectors = catalogue
    queries = random_vectors(rng, 6)
    best = built.search(queries, 3)[1]
    gone = sorted({v for row in best for v in row})
    with caplog.at_level(logging.INFO, logger="recsys.index"):
        assert built.remove(gone) == len(gone)
    _no_rebuild(caplog)
    assert len(built) == 400 - len(gone)
    assert not any(built.contains(v) for v in gone)
    keep = [i for i, v in enumerate(ids) if v not in set(gone)]
    scores, found = assert_matches(
        built, backend, vectors[keep], [ids[i] for i in keep], queries, k=10
    )
    assert not set(gone) & {v for row in found for v in row}
    built.add([gone[0]], vectors[ids.index(gone[0])][None])  # a removed id can come back
    assert built.contains(gone[0]) and len(built) == 401 - len(gone)


def test_remove_unknown_ids(built):
    with pytest.raises(UnknownIdError, match="'ghost'.*nothing was removed"):
        built.remove(["item-1", "ghost"])
    assert built.contains("item-1") and len(built) == 400  # all or nothing
    assert built.remove(["item-1", "ghost"], missing="ignore") == 1
    assert not built.contains("item-1") and len(built) == 399
    with pytest.raises(ValueError, match="missing must be"):
        built.remove(["item-2"], missing="skip")


def test_remove_everything_then_refill(backend, built, catalogue, rng):
    ids, vectors = catalogue
    built.remove(ids)
    assert len(built) == 0
    scores, found = built.search(random_vectors(rng, 2), 3)
    assert found.tolist() == [[None] * 3] * 2 and np.isneginf(scores).all()
    built.add(ids[:50], vectors[:50])
    assert_matches(built, backend, vectors[:50], ids[:50], random_vectors(rng, 3), k=5)


# ------------------------------------------------------------------------ exclusion, padding
def test_exclude_one_shared_set(backend, built, catalogue, rng):
    ids, vectors = catalogue
    queries = random_vectors(rng, 4)
    first = built.search(queries, 5)[1]
    excluded = {v for row in first for v in row} | {"not-in-index"}
    scores, found = assert_matches(built, backend, vectors, ids, queries, 10, exclude=excluded)
    assert not excluded & {v for row in found for v in row}


def test_exclude_per_query(backend, built, catalogue, rng):
    ids, vectors = catalogue
    queries = random_vectors(rng, 3)
    first = built.search(queries, 4)[1]
    per_query = [list(first[0]), None, set(first[2][:2])]
    scores, found = built.search(queries, 6, exclude=per_query)
    for row, excluded in enumerate(per_query):
        excluded = set(excluded or ())
        assert not excluded & set(found[row])
        reference = brute_force(vectors, ids, queries[row : row + 1], 6, excluded)[1][0]
        if backend.exact:
            assert found[row].tolist() == reference.tolist()
    assert found[1].tolist()[:4] == first[1].tolist()  # nothing excluded for query 1
    with pytest.raises(ValueError, match="2 per-query collections but there are 3 queries"):
        built.search(queries, 6, exclude=[["item-1"], ["item-2"]])


def test_padding_when_k_exceeds_size(backend, rng):
    vectors = random_vectors(rng, 5)
    index = backend.make().build(item_ids(5), vectors)
    scores, found = index.search(random_vectors(rng, 2), 8)
    assert scores.shape == found.shape == (2, 8)
    assert all(v is not None for v in found[:, :5].ravel())
    assert found[:, 5:].tolist() == [[None] * 3] * 2
    assert np.isneginf(scores[:, 5:]).all() and np.isfinite(scores[:, :5]).all()
    assert all(np.all(np.diff(row[:5]) <= 1e-6) for row in scores)  # best first
    scores, found = index.search(random_vectors(rng, 1), 8, exclude={"item-0", "item-1"})
    assert sum(v is not None for v in found[0]) == 3
    assert {"item-0", "item-1"}.isdisjoint(found[0])


def test_empty_index(backend, rng):
    index = backend.make()
    assert len(index) == 0
    scores, found = index.search(random_vectors(rng, 2), 3)
    assert found.tolist() == [[None] * 3] * 2 and np.isneginf(scores).all()
    index.add(item_ids(30), random_vectors(rng, 30))  # first add on an empty index
    assert len(index) == 30 and index.search(random_vectors(rng, 1), 3)[1][0, 0] is not None


# ---------------------------------------------------------------------------------- persist
def test_save_load_round_trip(backend, built, catalogue, rng, tmp_path):
    ids, vectors = catalogue
    built.remove(ids[:7])
    built.add(["fresh", ids[8]], random_vectors(rng, 2))
    queries = random_vectors(rng, 8)
    exclude = {ids[20], ids[30]}
    expected = built.search(queries, 12, exclude=exclude)
    path = built.save(tmp_path / "index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary leftovers
    for loader in (VectorIndex, backend.cls):
        loaded = loader.load(path, device=backend.kwargs.get("device", "auto"))
        assert type(loaded) is backend.cls
        got = loaded.search(queries, 12, exclude=exclude)
        assert got[1].tolist() == expected[1].tolist()
        np.testing.assert_array_equal(got[0], expected[0])
        assert loaded.describe()["size"] == len(built) and loaded.kind == built.kind
        np.testing.assert_allclose(loaded.vector("fresh"), built.vector("fresh"))
    loaded.add(["after-load"], random_vectors(rng, 1))  # still mutable
    loaded.remove([ids[9]])
    assert len(loaded) == len(built)
    built.save(path)  # saving over an existing index replaces it
    assert len(VectorIndex.load(path, device=backend.kwargs.get("device", "auto"))) == len(built)


# ---------------------------------------------------------------------------- bad arguments
def test_bad_arguments(built, rng):
    query = random_vectors(rng, 1)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        built.search(query, 0)
    with pytest.raises(ValueError, match="got -3"):
        built.search(query, -3)
    with pytest.raises(TypeError, match="k must be a positive integer"):
        built.search(query, 2.5)
    with pytest.raises(ValueError, match="dimension 8, the index expects 16"):
        built.search(random_vectors(rng, 1, dim=8), 3)
    with pytest.raises(ValueError, match="dimension 8, the index expects 16"):
        built.add(["x"], random_vectors(rng, 1, dim=8))
    with pytest.raises(TypeError, match="floating-point.*int64"):
        built.add(["x"], np.ones((1, DIM), dtype=np.int64))
    with pytest.raises(TypeError, match="floating-point"):
        built.search([["a"] * DIM], 3)
    bad = random_vectors(rng, 3)
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"row 1 \(id 'b'\) contains NaN"):
        built.add(["a", "b", "c"], bad)
    with pytest.raises(ValueError, match="queries row 0 contains NaN or infinite"):
        built.search(np.full(DIM, np.inf, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="duplicate ids: 'a'"):
        built.add(["a", "b", "a"], random_vectors(rng, 3))
    with pytest.raises(ValueError, match="duplicate ids"):
        built.remove(["item-1", "item-1"])
    with pytest.raises(ValueError, match="3 rows but 2 ids"):
        built.build(["a", "b"], random_vectors(rng, 3))
    with pytest.raises(ValueError, match="2-D array"):
        built.add(["a"], random_vectors(rng, 1)[0])
    with pytest.raises(TypeError, match=r"ids\[1\] must be a str or int, got float"):
        built.add(["a", 1.5], random_vectors(rng, 2))
    with pytest.raises(TypeError, match="not a single string|sequence of ids"):
        built.remove("item-1")
    assert len(built) == 400 and built.contains("item-1")  # failed calls changed nothing


def test_int_and_numpy_ids(backend, rng):
    vectors = random_vectors(rng, 20)
    index = backend.make().build(np.arange(20), vectors)
    found = index.search(vectors[3] * 5, 1)[1]
    assert found[0, 0] == 3 and type(found[0, 0]) is int
    assert index.contains(3) and not index.contains("3")
