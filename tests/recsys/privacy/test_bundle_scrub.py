"""Scrubbing a bundle cuts the erased users' id, vector and history and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.bundle import load_bundle
from recsys.privacy import find_bundles, scrub_bundle
from recsys.recommend import RecommendationEngine
from recsys.store import user_hash
from tests.utils.factories import make_bundle, make_shop


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    shop = make_shop(tmp_path_factory.mktemp("scrub-shop") / "shop", users=120, items=60)
    return make_bundle(shop, tmp_path_factory.mktemp("scrub-bundle") / "b", dim=8, epochs=1)


def _copy(original, tmp_path):
    import shutil

    return shutil.copytree(original, tmp_path / "copy")


def test_scrub_removes_the_users_rows_and_keeps_everyone_else(original, tmp_path):
    path = _copy(original, tmp_path)
    before = load_bundle(path, mmap=False)
    ids = [str(u) for u in before.user_ids]
    gone = [ids[3], ids[40]]
    vectors = before.arrays["user_vectors"]
    indptr = before.arrays["history_indptr"]

    touched = scrub_bundle(path, {user_hash(u) for u in gone})

    after = load_bundle(path, mmap=False)
    assert touched["rows_removed"] == 2 and "user_ids.npy" in touched["files"]
    assert "arrays/user_vectors.npy" in touched["files"]
    assert after.n_users == before.n_users - 2 and not set(gone) & set(after.user_ids)
    assert json.loads((path / "manifest.json").read_text())["n_users"] == after.n_users
    for user in (ids[0], ids[41], ids[-1]):  # the others keep their vector and history
        old, new = ids.index(user), list(after.user_ids).index(user)
        np.testing.assert_array_equal(after.arrays["user_vectors"][new], vectors[old])
        rows = slice(indptr[old], indptr[old + 1])
        new_indptr = after.arrays["history_indptr"]
        new_rows = slice(new_indptr[new], new_indptr[new + 1])
        np.testing.assert_array_equal(
            after.arrays["history_items"][new_rows], before.arrays["history_items"][rows]
        )
    assert len(after.arrays["history_items"]) == after.arrays["history_indptr"][-1]
    kept = np.delete(vectors, [3, 40], axis=0)
    np.testing.assert_allclose(after.arrays["mean_user"], kept.mean(axis=0), rtol=1e-6)
    # The scrubbed bundle still serves, and the same answer for a kept user.
    old_engine, new_engine = RecommendationEngine(before), RecommendationEngine(after)
    assert [i["item_id"] for i in new_engine.recommend(ids[0], k=5).items] == [
        i["item_id"] for i in old_engine.recommend(ids[0], k=5).items
    ]
    # No file of the bundle holds the erased id (numpy stores str as UTF-32) or its vector.
    for file in path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            for user in gone:
                assert user.encode("utf-32-le") not in data and user.encode() not in data
                assert vectors[ids.index(user)].tobytes() not in data, file
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".copy")]  # no leftovers


def test_scrub_of_an_absent_user_writes_nothing(original, tmp_path):
    path = _copy(original, tmp_path)
    stamp = {f: f.stat().st_mtime_ns for f in path.rglob("*") if f.is_file()}
    assert scrub_bundle(path, {user_hash("nobody-here")}) is None
    assert stamp == {f: f.stat().st_mtime_ns for f in path.rglob("*") if f.is_file()}
    assert find_bundles(tmp_path) == [path]
