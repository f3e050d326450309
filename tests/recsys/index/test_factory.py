"""make_index: the right backend for the kind and the machine, clear errors otherwise."""

from __future__ import annotations

import pytest

from recsys.device import DeviceUnavailableError, cuda_available, faiss_gpu_available
from recsys.index import FaissIndex, TorchIndex, make_index
from recsys.index.faiss_kinds import faiss

needs_faiss = pytest.mark.skipif(faiss is None, reason="FAISS is not installed")


@needs_faiss
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_faiss_kinds(kind):
    index = make_index(kind, 32, device="cpu")
    assert isinstance(index, FaissIndex) and index.kind == kind and index.dim == 32


def test_torch_kind_and_params_pass_through():
    index = make_index("torch", dim=8, device="cpu", max_score_elements=1000)
    assert isinstance(index, TorchIndex)
    assert index.describe()["params"]["max_score_elements"] == 1000


def test_auto_picks_for_this_machine():
    index = make_index(dim=16)
    if faiss_gpu_available():
        assert isinstance(index, FaissIndex) and index.device.startswith("cuda")
    elif cuda_available():
        assert isinstance(index, TorchIndex) and index.device.startswith("cuda")
    elif faiss is not None:
        assert isinstance(index, FaissIndex) and index.device == "cpu"
    else:
        assert isinstance(index, TorchIndex) and index.device == "cpu"
    cpu = make_index("auto", 16, device="cpu")
    assert cpu.device == "cpu"


def test_bad_factory_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        make_index("annoy", 16)
    with pytest.raises(ValueError, match="dim is required"):
        make_index("flat")
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        make_index("torch", -4)
    with pytest.raises(ValueError, match="unknown device"):
        make_index("torch", 4, device="tpu")
    with pytest.raises(TypeError, match="ef_search"):
        make_index("torch", 4, ef_search=10)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("kind", ["auto", "torch", "flat", "ivf"])
def test_forcing_the_gpu_without_one_fails_at_construction(kind):
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        make_index(kind, 16, device="cuda")
