"""Exact maximum inner product search in torch: one tensor on the device, matmul + top-k.

Selection is ``recsys.index.topk.exact_topk`` in item chunks of bounded size: block-maximum top-k
on CUDA (much faster than ``torch.topk`` over wide score rows), ``torch.topk`` on the CPU.

This is the GPU path that needs no FAISS GPU build: whenever torch sees CUDA the vectors live on the
GPU (fp16 storage on request), on the CPU they are fp32. The catalogue is a compacted tensor with
amortised growth; removal moves the last rows into the holes, so add/update/remove never rebuild.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.device import resolve_device
from recsys.index.base import ExcludeSlots, VectorIndex
from recsys.index.checks import Id
from recsys.index.topk import exact_topk

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16")
VECTORS_FILE = "vectors.npy"
_MIN_CAPACITY = 1024


class TorchIndex(VectorIndex):
    """Exact inner-product index over one (capacity, dim) tensor on ``device``.

    Parameters
    ----------
    dim : int
        Vector dimension.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"auto"`` uses CUDA when torch sees it; ``"cuda"`` without a GPU raises
        ``DeviceUnavailableError`` here, at construction.
    precision : {"fp32", "fp16", "auto"}
        Storage (and matmul) precision. ``"fp16"`` halves memory and is much faster on CUDA;
        on the CPU it falls back to fp32 (logged). ``"auto"`` means fp16 on CUDA, fp32 on the CPU.
    max_score_elements : int, optional
        Upper bound on the (queries x items) score block computed at once (default 2**25 on the
        CPU, 2**28 on CUDA, i.e. 128 MiB / 1 GiB of fp32 scores); larger catalogues are scanned in
        item chunks whose top-k are merged, so memory stays bounded.
    """

    backend = "torch"

    def __init__(
        self,
        dim: int,
        device: str | torch.device = "auto",
        *,
        precision: str = "fp32",
        max_score_elements: int | None = None,
    ) -> None:
        super().__init__(dim)
        self._device = resolve_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        on_cuda = self._device.type == "cuda"
        if precision == "fp16" and not on_cuda:
            logger.warning("fp16 storage is for CUDA; storing fp32 on %s", self._device)
        self._precision = precision
        self._dtype = torch.float16 if on_cuda and precision in ("fp16", "auto") else torch.float32
        self._max_score_setting = max_score_elements  # None: the device's default
        if max_score_elements is None:
            max_score_elements = 1 << 28 if on_cuda else 1 << 25
        if isinstance(max_score_elements, bool) or int(max_score_elements) < 1:
            raise ValueError(f"max_score_elements must be >= 1, got {max_score_elements}")
        self._max_score_elements = int(max_score_elements)
        self._vectors = torch.empty((0, self._dim), dtype=self._dtype, device=self._device)
        self._n = 0

    @property
    def kind(self) -> str:
        return "exact"

    @property
    def device(self) -> str:
        return str(self._device)

    # ------------------------------------------------------------------------------- storage
    def _to_device(self, vectors: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(vectors).to(device=self._device, dtype=self._dtype)

    def _reserve(self, needed: int) -> None:
        capacity = self._vectors.shape[0]
        if needed <= capacity:
            return
        grown = max(needed, int(capacity * 1.5), _MIN_CAPACITY)
        vectors = torch.empty((grown, self._dim), dtype=self._dtype, device=self._device)
        vectors[: self._n] = self._vectors[: self._n]
        self._vectors = vectors

    def _build(self, ids: list[Id], vectors: np.ndarray) -> None:
        self._table.clear()
        self._vectors = torch.empty((0, self._dim), dtype=self._dtype, device=self._device)
        self._n = 0
        self._add(ids, vectors)

    def _add(self, ids: list[Id], vectors: np.ndarray) -> None:
        slots = self._table.lookup(ids)
        known = slots >= 0
        if known.any():
            rows = torch.from_numpy(slots[known]).to(self._device)
            self._vectors[rows] = self._to_device(vectors[known])
        fresh = np.flatnonzero(~known)
        if len(fresh):
            start = self._n
            self._reserve(start + len(fresh))
            self._vectors[start : start + len(fresh)] = self._to_device(vectors[fresh])
            self._table.assign([ids[i] for i in fresh], np.arange(start, start + len(fresh)))
            self._n += len(fresh)

    def _remove(self, ids: list[Id]) -> None:
        removed = self._table.drop(ids)
        new_n = self._n - len(removed)
        holes = np.sort(removed[removed < new_n])
        tail = np.setdiff1d(np.arange(new_n, self._n), removed, assume_unique=True)
        if len(holes):  # fill holes with the surviving tail rows: O(removed), not O(n)
            dst = torch.from_numpy(holes).to(self._device)
            src = torch.from_numpy(tail).to(self._device)
            self._vectors[dst] = self._vectors[src]
            self._table.move(tail, holes)
        self._n = new_n
        capacity = self._vectors.shape[0]
        if capacity > _MIN_CAPACITY and self._n < capacity // 4:  # give memory back
            self._vectors = self._vectors[: max(2 * self._n, _MIN_CAPACITY)].clone()

    def _vector(self, slot: int) -> np.ndarray:
        return self._vectors[slot].to("cpu", torch.float32).numpy().copy()

    # -------------------------------------------------------------------------------- search
    def _search(self, queries: np.ndarray, k: int, exclude: ExcludeSlots):
        q = self._to_device(queries)
        rows, cols = _exclusion_pairs(exclude, len(queries))
        cols_t = torch.from_numpy(cols).to(self._device)
        rows_t = torch.from_numpy(rows).to(self._device) if rows is not None else None
        with torch.inference_mode():
            best_scores, best_slots = exact_topk(
                q, self._vectors[: self._n], k, exclude=(rows_t, cols_t),
                max_score_elements=self._max_score_elements,
            )  # fmt: skip
        scores = best_scores.cpu().numpy()
        slots = best_slots.cpu().numpy()
        slots[np.isneginf(scores)] = -1  # excluded items that only filled up a short row
        return scores, slots

    # ------------------------------------------------------------------------------- persist
    def _params(self) -> dict[str, Any]:
        return {
            "precision": self._precision,
            "dtype": str(self._dtype).removeprefix("torch."),
            "capacity": int(self._vectors.shape[0]),
            "max_score_elements": self._max_score_elements,
            "max_score_elements_setting": self._max_score_setting,
            "bytes_per_vector": self._dim * self._vectors.element_size(),
        }

    def _save_payload(self, directory: Path) -> dict[str, Any]:
        vectors = self._vectors[: self._n].cpu().numpy()
        np.save(directory / VECTORS_FILE, vectors, allow_pickle=False)
        return {}

    @classmethod
    def _load_payload(cls, directory, meta, ids, slots, device):
        vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
        if vectors.shape != (len(ids), meta["dim"]):
            raise ValueError(
                f"{directory / VECTORS_FILE} has shape {vectors.shape}, "
                f"expected ({len(ids)}, {meta['dim']})"
            )
        if not np.array_equal(slots, np.arange(len(ids))):
            raise ValueError(f"{directory}: torch index slots must be the rows 0..n-1")
        params = meta.get("params", {})
        index = cls(
            meta["dim"],
            device=device,
            precision=params.get("precision", "fp32"),
            max_score_elements=params.get("max_score_elements_setting"),
        )
        index._add(ids, vectors.astype(np.float32, copy=False))
        return index


def _exclusion_pairs(exclude: ExcludeSlots, b: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Exclusions as (rows, cols) index arrays; rows is None when one set applies to all queries."""
    if exclude is None:
        return None, np.empty(0, np.int64)
    if isinstance(exclude, np.ndarray):
        return None, exclude
    rows = np.repeat(np.arange(b, dtype=np.int64), [len(row) for row in exclude])
    cols = np.concatenate(exclude) if rows.size else np.empty(0, np.int64)
    return rows, cols.astype(np.int64, copy=False)
