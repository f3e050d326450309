"""Backends for the shared index behaviour suite, and small vector factories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from recsys.device import cuda_available, faiss_gpu_available
from recsys.index import FaissIndex, TorchIndex
from recsys.index.faiss_kinds import faiss

DIM = 16


@dataclass(frozen=True)
class Backend:
    """How to make one backend, and whether its search is exact."""

    name: str
    cls: type
    kwargs: dict[str, Any]
    exact: bool
    needs: str | None = None  # "cuda", "faiss", "faiss-gpu"

    def make(self, dim: int = DIM, **extra):
        return self.cls(dim, **{**self.kwargs, **extra})


BACKENDS = [
    Backend("torch-cpu", TorchIndex, {"device": "cpu"}, exact=True),
    Backend("torch-cuda", TorchIndex, {"device": "cuda"}, exact=True, needs="cuda"),
    Backend(
        "torch-cuda-fp16",
        TorchIndex,
        {"device": "cuda", "precision": "fp16"},
        exact=False,
        needs="cuda",
    ),
    Backend("faiss-flat", FaissIndex, {"kind": "flat", "device": "cpu"}, True, "faiss"),
    Backend("faiss-hnsw", FaissIndex, {"kind": "hnsw", "device": "cpu"}, False, "faiss"),
    Backend("faiss-ivf", FaissIndex, {"kind": "ivf", "device": "cpu"}, False, "faiss"),
    Backend("faiss-flat-gpu", FaissIndex, {"kind": "flat", "device": "cuda"}, True, "faiss-gpu"),
    Backend("faiss-ivf-gpu", FaissIndex, {"kind": "ivf", "device": "cuda"}, False, "faiss-gpu"),
]


def skip_reason(backend: Backend) -> str | None:
    """Why ``backend`` cannot run on this machine, or None."""
    if backend.needs == "cuda" and not cuda_available():
        return "CUDA is not available to torch on this machine"
    if backend.needs == "faiss" and faiss is None:
        return "FAISS is not installed"
    if backend.needs == "faiss-gpu" and not faiss_gpu_available():
        return "no FAISS GPU build / GPU on this machine (faiss-cpu is installed)"
    return None


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request) -> Backend:
    """Every backend; unavailable ones skip with the reason."""
    reason = skip_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
