"""Torch-specific behaviour: chunked scans, amortised storage, precision choice."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recsys.device import DeviceUnavailableError, cuda_available
from recsys.index import TorchIndex

DIM = 8


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def names(n: int, start: int = 0) -> list[str]:
    return [f"t{j}" for j in range(start, start + n)]


def test_chunked_scan_equals_one_block():
    data, queries = vectors(2500), vectors(7, seed=1)
    whole = TorchIndex(DIM, device="cpu").build(names(2500), data)
    chunked = TorchIndex(DIM, device="cpu", max_score_elements=7 * 300).build(names(2500), data)
    excluded = [names(3), None, names(50, start=100), [], names(1, start=2499), None, None]
    for exclude in (None, set(names(40)), excluded):
        expected, got = whole.search(queries, 25, exclude), chunked.search(queries, 25, exclude)
        assert got[1].tolist() == expected[1].tolist()
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


def test_storage_grows_amortised_and_shrinks():
    index = TorchIndex(DIM, device="cpu")
    capacities = set()
    for start in range(0, 5000, 100):
        index.add(names(100, start), vectors(100, seed=start))
        capacities.add(index.describe()["params"]["capacity"])
    assert len(index) == 5000 and len(capacities) <= 6  # geometric growth, few reallocations
    index.remove(names(4900))
    assert index.describe()["params"]["capacity"] < 5000  # memory is given back
    remaining = vectors(100, seed=4900)
    np.testing.assert_array_equal(index.vector("t4950"), remaining[50])
    assert sorted(index.ids()) == sorted(names(100, 4900))


def test_remove_moves_tail_rows_into_holes():
    data = vectors(10)
    index = TorchIndex(DIM, device="cpu").build(names(10), data)
    index.remove(["t0", "t4", "t9", "t8"])
    for i in (1, 2, 3, 5, 6, 7):
        np.testing.assert_array_equal(index.vector(f"t{i}"), data[i])
    assert len(index) == 6


def test_precision_choice(caplog):
    with caplog.at_level(logging.WARNING, logger="recsys.index"):
        index = TorchIndex(DIM, device="cpu", precision="fp16")
    assert index.describe()["params"]["dtype"] == "float32"
    assert any("fp16 storage is for CUDA" in r.getMessage() for r in caplog.records)
    assert TorchIndex(DIM, device="cpu", precision="auto").describe()["params"]["dtype"] == (
        "float32"
    )
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchIndex(DIM, precision="int8")
    with pytest.raises(ValueError, match="max_score_elements"):
        TorchIndex(DIM, max_score_elements=0)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_forcing_cuda_without_a_gpu_fails_at_construction():
    with pytest.raises(DeviceUnavailableError, match="torch sees no CUDA GPU"):
        TorchIndex(DIM, device="cuda")
    assert TorchIndex(DIM, device="auto").device == "cpu"


@pytest.mark.skipif(not cuda_available(), reason="CUDA is not available to torch on this machine")
def test_fp16_on_cuda_halves_storage(tmp_path):
    index = TorchIndex(DIM, device="cuda", precision="fp16").build(names(100), vectors(100))
    assert index.describe()["params"]["bytes_per_vector"] == 2 * DIM
    index.save(tmp_path / "fp16")
    loaded = TorchIndex.load(tmp_path / "fp16", device="cpu")  # GPU-saved, CPU-loaded
    assert loaded.device == "cpu" and len(loaded) == 100
