"""The one place that probes the hardware: CUDA (torch), FAISS GPU support and cuDF.

Everything else asks this module instead of probing on its own, so a machine's capabilities are
decided once and a forced GPU on a CPU-only machine fails with the same clear message everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass

import torch

from recsys.errors import UnavailableError

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(UnavailableError):
    """A GPU was asked for explicitly but this machine cannot provide it."""


@dataclass(frozen=True)
class Capabilities:
    """What this process can use."""

    cuda: bool
    cuda_device_count: int
    cuda_device_name: str | None
    faiss_gpu: bool
    cudf: bool

    def as_dict(self) -> dict:
        return {
            "cuda": self.cuda,
            "cuda_device_count": self.cuda_device_count,
            "cuda_device_name": self.cuda_device_name,
            "faiss_gpu": self.faiss_gpu,
            "cudf": self.cudf,
        }


def _probe_faiss_gpu() -> bool:
    if importlib.util.find_spec("faiss") is None:
        return False
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # a broken GPU build must not take the CPU path down with it
        logger.warning("faiss is installed but its GPU probe failed; using FAISS on the CPU")
        return False


@functools.cache
def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    return torch.cuda.is_available()


@functools.cache
def faiss_gpu_available() -> bool:
    """Whether the installed FAISS is a GPU build and sees a GPU (imports faiss on first call)."""
    return _probe_faiss_gpu()


@functools.cache
def cudf_available() -> bool:
    """Whether cuDF is installed and a GPU is there to run it."""
    return cuda_available() and importlib.util.find_spec("cudf") is not None


def capabilities() -> Capabilities:
    """Everything this process can use (each probe runs once per process)."""
    cuda = cuda_available()
    return Capabilities(
        cuda=cuda,
        cuda_device_count=torch.cuda.device_count() if cuda else 0,
        cuda_device_name=torch.cuda.get_device_name(0) if cuda else None,
        faiss_gpu=faiss_gpu_available(),
        cudf=cudf_available(),
    )


def resolve_device(requested: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device choice into a torch device.

    Parameters
    ----------
    requested : {"auto", "cpu", "cuda", "cuda:N"} or torch.device or None
        ``"auto"`` (and ``None``) picks CUDA when torch sees a GPU, else the CPU.

    Raises
    ------
    DeviceUnavailableError
        When CUDA is requested and torch sees no GPU.
    ValueError
        For an unknown device name.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    name = (requested or "auto").strip().lower()
    if name == "gpu":
        name = "cuda"
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise DeviceUnavailableError(
                f"device={requested!r} was requested but torch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
                "use device='auto' or 'cpu'"
            )
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device={requested!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
        return torch.device(name)
    raise ValueError(f"unknown device {requested!r}; expected one of {', '.join(DEVICE_CHOICES)}")
