"""``make_index``: one entry point that returns the right vector index for the machine and the ask.

Shaped like implicit's ``als.py`` factory: the caller names what it wants (``kind``) and where
(``device``), and gets a class sharing the ``VectorIndex`` API.

``kind="auto"`` resolves as follows:

* a FAISS GPU build that sees a GPU -> ``FaissIndex`` on the GPU (flat, then IVF past 1M items);
* else CUDA visible to torch -> exact ``TorchIndex`` on the GPU (no FAISS GPU build needed);
* else FAISS installed -> ``FaissIndex`` on the CPU (flat below 50k items, HNSW above);
* else -> exact ``TorchIndex`` on the CPU.

``device="cpu"`` skips the GPU rows; ``device="cuda"`` keeps only them and raises
``DeviceUnavailableError`` at construction when this machine has no usable GPU.
"""

from __future__ import annotations

import logging

import torch

from recsys.device import faiss_gpu_available, resolve_device
from recsys.index.base import VectorIndex
from recsys.index.checks import check_dim
from recsys.index.faiss_index import FaissIndex
from recsys.index.faiss_kinds import faiss
from recsys.index.torch_index import TorchIndex

logger = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "torch")


def make_index(
    kind: str = "auto", dim: int | None = None, device: str | torch.device = "auto", **params
) -> VectorIndex:
    """Create an empty vector index.

    Parameters
    ----------
    kind : {"auto", "flat", "hnsw", "ivf", "torch"}
        ``"flat"``/``"hnsw"``/``"ivf"`` force a FAISS structure, ``"torch"`` the exact torch index,
        ``"auto"`` picks for this machine (see the module notes; FAISS then also picks the
        structure by catalogue size at build time).
    dim : int
        Vector dimension (required).
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where searches run; forcing ``"cuda"`` without a usable GPU raises
        ``recsys.device.DeviceUnavailableError``.
    **params
        Backend settings, passed on (e.g. ``ef_search``, ``nprobe`` for FAISS; ``precision`` for
        torch). A setting the chosen backend does not know raises ``TypeError``.

    Returns
    -------
    VectorIndex
        A ``FaissIndex`` or a ``TorchIndex``; call ``build`` or ``add`` to fill it.
    """
    if kind not in INDEX_KINDS:
        raise ValueError(f"kind must be one of {INDEX_KINDS}, got {kind!r}")
    if dim is None:
        raise ValueError("dim is required: the dimension of the vectors to index")
    dim = check_dim(dim)
    if kind == "torch":
        return TorchIndex(dim, device=device, **params)
    if kind != "auto":
        return FaissIndex(dim, kind=kind, device=device, **params)
    target = resolve_device(device)  # raises for a forced GPU on a machine without one
    if target.type == "cuda":
        if faiss_gpu_available():
            return FaissIndex(dim, kind="auto", device=str(target), **params)
        logger.info("no FAISS GPU build: exact torch index on %s", target)
        return TorchIndex(dim, device=target, **params)
    if faiss is not None:
        return FaissIndex(dim, kind="auto", device="cpu", **params)
    logger.info("FAISS is not installed: exact torch index on the CPU")
    return TorchIndex(dim, device=target, **params)
