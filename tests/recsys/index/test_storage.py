"""Index directories: atomic replacement, and clear errors for what is not a saved index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.index import FaissIndex, TorchIndex, VectorIndex
from recsys.index.faiss_kinds import faiss
from recsys.index.storage import atomic_directory


def small_index() -> TorchIndex:
    data = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    return TorchIndex(4, device="cpu").build([f"s{i}" for i in range(20)], data)


def test_a_crash_while_writing_keeps_the_previous_index(tmp_path):
    target = tmp_path / "idx"
    small_index().save(target)
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_directory(target) as tmp:
            (tmp / "meta.json").write_text("{half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in target.iterdir()) == before
    assert len(VectorIndex.load(target)) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary leftovers


def test_saving_over_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not an index")
    with pytest.raises(FileExistsError, match="not a directory"):
        small_index().save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "not an index"


def test_loading_what_is_not_an_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory holding a saved vector index"):
        VectorIndex.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        VectorIndex.load(tmp_path / "empty")
    path = small_index().save(tmp_path / "ok")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="unsupported index format 99"):
        VectorIndex.load(path)
    (path / "meta.json").write_text(json.dumps({**meta, "backend": "annoy"}))
    with pytest.raises(ValueError, match="unknown index backend 'annoy'"):
        VectorIndex.load(path)
    (path / "meta.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        VectorIndex.load(path)


@pytest.mark.skipif(faiss is None, reason="FAISS is not installed")
def test_backend_class_refuses_another_backends_directory(tmp_path):
    path = small_index().save(tmp_path / "torch")
    with pytest.raises(ValueError, match="holds a 'torch' index, not 'faiss'"):
        FaissIndex.load(path)
