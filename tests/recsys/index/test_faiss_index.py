"""FAISS specifics: tombstones and compaction, kind by size, IVF training, tuning, GPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recsys.device import DeviceUnavailableError, cuda_available, faiss_gpu_available
from recsys.index import FaissIndex, TorchIndex
from recsys.index import faiss_kinds as fk

pytestmark = pytest.mark.skipif(fk.faiss is None, reason="FAISS is not installed")

DIM = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def names(n: int, start: int = 0) -> list[str]:
    return [f"i{j}" for j in range(start, start + n)]


def exact_ids(index_vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int):
    order = np.argsort(-(queries @ index_vectors.T), axis=1)[:, :k]
    return np.array(ids, dtype=object)[order]


def test_hnsw_removal_keeps_tombstones_then_compacts(caplog):
    data = vectors(1000)
    index = FaissIndex(DIM, "hnsw", device="cpu", max_tombstone_fraction=0.2).build(
        names(1000), data
    )
    index.remove(names(150))  # 15%: tombstones, no rebuild
    params = index.describe()["params"]
    assert params["tombstones"] == 150 and params["stored_vectors"] == 1000
    queries = data[:40] * 3  # removed items would be the best answers
    found = index.search(queries, 10)[1]
    assert not set(names(150)) & {v for row in found for v in row}
    assert all(v is not None for v in found.ravel())
    with caplog.at_level(logging.INFO, logger="recsys.index"):
        index.remove(names(60, start=150))  # 21% > 20%: compaction
    assert any("rebuilding the hnsw index" in r.getMessage() for r in caplog.records)
    params = index.describe()["params"]
    assert params["tombstones"] == 0 and params["stored_vectors"] == 790 == len(index)
    live = data[210:]
    truth = exact_ids(live, names(790, start=210), queries, 10)
    found = index.search(queries, 10)[1]
    hits = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert hits >= 0.95


def test_hnsw_update_tombstones_the_old_vector():
    data = vectors(300)
    index = FaissIndex(DIM, "hnsw", device="cpu").build(names(300), data)
    index.add(["i5"], -5 * data[5:6])  # the old vector of i5 must never come back
    assert index.describe()["params"]["tombstones"] == 1
    assert "i5" not in index.search(data[5] * 3, 10)[1][0]  # the old vector would be first
    scores, found = index.search(-data[5], 1)
    assert found[0, 0] == "i5"
    assert scores[0, 0] == pytest.approx(5 * float(data[5] @ data[5]), rel=1e-4)
    scores, found = index.search(data[5], 300)  # near the full size: an exact scan
    assert list(found[0]).count("i5") == 1 and None not in found[0]
    position = list(found[0]).index("i5")
    assert position == 299
    assert scores[0, position] == pytest.approx(-5 * float(data[5] @ data[5]), rel=1e-4)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_ann_returns_everything_when_k_reaches_the_size(kind):
    data = vectors(400)
    index = FaissIndex(DIM, kind, device="cpu").build(names(400), data)
    index.remove(names(10))
    scores, found = index.search(vectors(3, seed=8), 395, exclude={"i20"})
    for row in found:
        assert sorted(row[:389]) == sorted(set(names(390, start=10)) - {"i20"})
        assert list(row[389:]) == [None] * 6


def test_auto_kind_follows_catalogue_size(caplog):
    index = FaissIndex(DIM, "auto", device="cpu", flat_threshold=200)
    index.build(names(100), vectors(100))
    assert index.kind == "flat"
    index.add(names(150, start=100), vectors(150, seed=1))  # 250 < 2 x 200: stays flat
    assert index.kind == "flat"
    with caplog.at_level(logging.INFO, logger="recsys.index"):
        index.add(names(200, start=250), vectors(200, seed=2))  # 450 >= 400: becomes HNSW
    assert index.kind == "hnsw" and len(index) == 450
    assert any("call for hnsw instead of flat" in r.getMessage() for r in caplog.records)
    index.remove(names(400))  # 50 < 100: back to exact flat
    assert index.kind == "flat" and len(index) == 50
    assert index.search(vectors(1, seed=3), 60)[1][0, 49] is not None
    assert FaissIndex(DIM, "auto", device="cpu").build(names(10), vectors(10)).kind == "flat"


def test_ivf_small_catalogues_and_growth():
    tiny = FaissIndex(DIM, "ivf", device="cpu").build(names(5), vectors(5))
    assert tiny.describe()["params"]["nlist_in_use"] == 1
    assert (
        tiny.search(vectors(1, seed=1), 3)[1][0].tolist()
        == exact_ids(vectors(5), names(5), vectors(1, seed=1), 3)[0].tolist()
    )
    empty = FaissIndex(DIM, "ivf", device="cpu").build([], np.empty((0, DIM), np.float32))
    assert len(empty) == 0 and empty.search(vectors(1), 2)[1].tolist() == [[None, None]]
    empty.add(names(80), vectors(80))  # trains on the first vectors it gets
    assert empty.describe()["params"]["nlist_in_use"] == 2  # 80 // 39
    empty.add(names(2000, start=80), vectors(2000, seed=4))  # 26x the training set: retrain
    params = empty.describe()["params"]
    assert params["nlist_in_use"] == fk.nlist_for(2080) and len(empty) == 2080


def test_nlist_rule():
    assert fk.nlist_for(0) == 1 and fk.nlist_for(100) == 2
    assert fk.nlist_for(10_000) == 256  # n / 39 caps 4 sqrt(n) = 400
    assert fk.nlist_for(1_000_000) == 4000


def test_fixed_and_tuned_search_knobs():
    data = vectors(3000)
    fixed = FaissIndex(DIM, "hnsw", device="cpu", ef_search=77).build(names(3000), data)
    assert fixed.describe()["params"]["search_value_in_use"] == 77
    tuned = FaissIndex(DIM, "ivf", device="cpu").build(names(3000), data)
    params = tuned.describe()["params"]
    assert params["tuned_recall@10"] >= 0.96 and params["search_value_in_use"] >= 1
    report = tuned.tune(queries=vectors(50, seed=9), target_recall=0.99)
    assert report["param"] == "nprobe" and report["recall"] >= 0.99
    assert tuned.describe()["params"]["search_value_in_use"] == report["value"]
    flat = FaissIndex(DIM, "flat", device="cpu").build(names(10), data[:10])
    assert flat.tune()["recall"] == 1.0


def test_settings_are_validated():
    with pytest.raises(ValueError, match="kind must be one of"):
        FaissIndex(DIM, "lsh")
    with pytest.raises(ValueError, match="ef_search must be a positive integer, got 0"):
        FaissIndex(DIM, "hnsw", ef_search=0)
    with pytest.raises(ValueError, match="hnsw_m must be a positive integer"):
        FaissIndex(DIM, "hnsw", hnsw_m=None)
    with pytest.raises(ValueError, match="target_recall must be in"):
        FaissIndex(DIM, target_recall=1.5)
    with pytest.raises(ValueError, match="max_tombstone_fraction"):
        FaissIndex(DIM, max_tombstone_fraction=0)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        FaissIndex(0)


@pytest.mark.skipif(faiss_gpu_available(), reason="this machine has a FAISS GPU build")
def test_forcing_the_gpu_without_faiss_gpu_fails_at_construction():
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        FaissIndex(DIM, "flat", device="cuda")
    assert FaissIndex(DIM, "flat", device="auto").device == "cpu"


@pytest.mark.skipif(not faiss_gpu_available(), reason="no FAISS GPU build / GPU on this machine")
def test_gpu_matches_cpu_and_saves_cpu_form(tmp_path):
    data, queries = vectors(5000), vectors(20, seed=5)
    cpu = FaissIndex(DIM, "flat", device="cpu").build(names(5000), data)
    gpu = FaissIndex(DIM, "flat", device="cuda").build(names(5000), data)
    assert gpu.device.startswith("cuda")
    for index in (cpu, gpu):
        index.remove(names(100))
        index.add(["new"], data[:1] * 4)
    expected, got = cpu.search(queries, 10), gpu.search(queries, 10)
    assert got[1].tolist() == expected[1].tolist()
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-4)
    gpu.save(tmp_path / "gpu")
    on_cpu = FaissIndex.load(tmp_path / "gpu", device="cpu")  # written in CPU form
    assert on_cpu.search(queries, 10)[1].tolist() == expected[1].tolist()
    with pytest.raises(ValueError, match="no GPU HNSW"):
        FaissIndex(DIM, "hnsw", device="cuda")


@pytest.mark.skipif(not cuda_available(), reason="CUDA is not available to torch on this machine")
def test_torch_gpu_matches_torch_cpu():
    data, queries = vectors(20_000), vectors(64, seed=6)
    cpu = TorchIndex(DIM, device="cpu").build(names(20_000), data)
    for precision, tol in (("fp32", 1e-4), ("fp16", 5e-2)):
        gpu = TorchIndex(DIM, device="cuda", precision=precision).build(names(20_000), data)
        (cs, ci), (gs, gi) = cpu.search(queries, 10), gpu.search(queries, 10)
        np.testing.assert_allclose(gs, cs, rtol=tol, atol=tol)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ci, gi, strict=True)])
        assert overlap >= (1.0 if precision == "fp32" else 0.95)


def test_untrained_ivf_round_trip(tmp_path):
    empty = FaissIndex(DIM, "ivf", device="cpu").build([], np.empty((0, DIM), np.float32))
    loaded = FaissIndex.load(empty.save(tmp_path / "empty"), device="cpu")
    assert len(loaded) == 0 and loaded.kind == "ivf"
    loaded.add(names(50), vectors(50))
    assert loaded.search(vectors(50)[7] * 5, 1)[1][0, 0] == "i7"
