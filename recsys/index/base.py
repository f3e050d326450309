"""The ``VectorIndex`` interface: maximum inner product search over float32 vectors with string ids.

Backends (FAISS, exact torch) implement a handful of hooks over internal int64 *slots*; this base
class validates every argument, maps external ids to slots and back, pads short result rows, holds
the lock that makes one index safe to share between threads, and writes/reads index directories.
"""

from __future__ import annotations

import importlib
import logging
import threading
from abc import ABC, abstractmethod
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recsys.errors import NotFoundError
from recsys.index.checks import (
    Id,
    check_dim,
    check_id,
    check_ids,
    check_k,
    check_queries,
    check_vectors,
    normalize_exclude,
)
from recsys.index.idtable import IdTable
from recsys.index.storage import (
    FORMAT_VERSION,
    IDS_FILE,
    META_FILE,
    atomic_directory,
    read_json,
    write_json,
)

logger = logging.getLogger(__name__)

# backend name (as written in meta.json) -> "module:Class"; imported lazily so that the torch
# backend works on machines without FAISS
BACKENDS = {
    "faiss": "recsys.index.faiss_index:FaissIndex",
    "torch": "recsys.index.torch_index:TorchIndex",
}

ExcludeSlots = None | np.ndarray | list[np.ndarray]


class UnknownIdError(NotFoundError, KeyError):
    """An id the index does not hold was asked for."""


def _backend_class(name: str) -> type[VectorIndex]:
    if name not in BACKENDS:
        raise ValueError(f"unknown index backend {name!r}; expected one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


class VectorIndex(ABC):
    """Maximum inner product search over float32 vectors keyed by external ids (str or int).

    Parameters
    ----------
    dim : int
        Vector dimension.

    Notes
    -----
    Scores are inner products ``q . v`` (normalise vectors yourself for cosine). Every method
    validates its arguments: wrong dimensions, non-float dtypes, NaN/inf rows, duplicate ids in one
    call and ``k <= 0`` raise errors that name the problem. Methods hold one re-entrant lock, so an
    index can be shared by threads (searches are serialised).
    """

    backend: ClassVar[str] = "base"

    def __init__(self, dim: int) -> None:
        self._dim = check_dim(dim)
        self._table = IdTable()
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- what subclasses implement
    @property
    @abstractmethod
    def kind(self) -> str:
        """The index structure in use ("flat", "hnsw", "ivf", "exact")."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where searches run ("cpu", "cuda:0")."""

    @abstractmethod
    def _build(self, ids: list[Id], vectors: np.ndarray) -> None:
        """Drop everything and index ``vectors`` under ``ids``."""

    @abstractmethod
    def _add(self, ids: list[Id], vectors: np.ndarray) -> None:
        """Insert new ids and replace the vectors of ids already held."""

    @abstractmethod
    def _remove(self, ids: list[Id]) -> None:
        """Remove ids that are all held."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int, exclude: ExcludeSlots):
        """Top ``k`` as (scores float32 (b, k'), slots int64 (b, k')), k' <= k, slot -1 = none."""

    @abstractmethod
    def _vector(self, slot: int) -> np.ndarray:
        """The stored vector at ``slot`` as float32."""

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """Backend settings for ``describe`` and ``meta.json``."""

    @abstractmethod
    def _save_payload(self, directory: Path) -> dict[str, Any]:
        """Write the backend's files into ``directory``; return extra metadata."""

    @classmethod
    @abstractmethod
    def _load_payload(
        cls, directory: Path, meta: dict[str, Any], ids: list[Id], slots: np.ndarray, device: str
    ) -> VectorIndex:
        """Rebuild an index from the files ``_save_payload`` wrote."""

    # -------------------------------------------------------------------------------- public API
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._table

    def contains(self, item_id: Id) -> bool:
        """Whether ``item_id`` is indexed."""
        return item_id in self._table

    def ids(self) -> list[Id]:
        """All indexed ids (in storage order)."""
        with self._lock:
            return self._table.items()[0]

    def build(self, ids, vectors) -> VectorIndex:
        """Replace the whole content by ``vectors`` under ``ids``.

        Parameters
        ----------
        ids : sequence of str or int
            ``n`` distinct ids.
        vectors : array-like, shape (n, dim)
            Finite floating-point vectors (stored as float32).

        Returns
        -------
        VectorIndex
            ``self``, for chaining.
        """
        ids = check_ids(ids)
        vectors = check_vectors(vectors, self._dim, ids)
        with self._lock:
            self._build(ids, vectors)
        logger.info("built %s index: %d vectors x %d", self.kind, len(self), self._dim)
        return self

    def add(self, ids, vectors) -> VectorIndex:
        """Insert or update (upsert) items without rebuilding the index.

        Parameters
        ----------
        ids : sequence of str or int
            Distinct ids; an id already held gets its new vector (the old one is never returned
            again), a new id is inserted.
        vectors : array-like, shape (len(ids), dim)
            Finite floating-point vectors.

        Returns
        -------
        VectorIndex
            ``self``, for chaining.
        """
        ids = check_ids(ids)
        vectors = check_vectors(vectors, self._dim, ids)
        if ids:
            with self._lock:
                self._add(ids, vectors)
        return self

    def remove(self, ids, missing: str = "raise") -> int:
        """Remove items without rebuilding.

        Parameters
        ----------
        ids : sequence of str or int
            Ids to remove (distinct).
        missing : {"raise", "ignore"}
            What to do with ids the index does not hold: ``"raise"`` (default) raises
            ``UnknownIdError`` and removes nothing; ``"ignore"`` skips them.

        Returns
        -------
        int
            The number of items removed.
        """
        if missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
        ids = check_ids(ids)
        with self._lock:
            unknown = [v for v in ids if v not in self._table]
            if unknown and missing == "raise":
                shown = ", ".join(repr(v) for v in unknown[:5])
                raise UnknownIdError(
                    f"cannot remove {len(unknown)} id(s) the index does not hold: {shown}"
                    + (" ..." if len(unknown) > 5 else "")
                    + " (pass missing='ignore' to skip them); nothing was removed"
                )
            known = [v for v in ids if v in self._table] if unknown else ids
            if known:
                self._remove(known)
        return len(known)

    def search(self, queries, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by inner product for each query.

        Parameters
        ----------
        queries : array-like, shape (b, dim) or (dim,)
            Float query vectors; a 1-D query is a batch of one.
        k : int
            Results per query (> 0).
        exclude : collection of ids, or sequence of b collections, optional
            Ids never returned: one set shared by all queries, or one collection per query
            (``None`` entries allowed). Unknown ids are ignored.

        Returns
        -------
        scores : ndarray of float32, shape (b, k)
            Inner products, best first; ``-inf`` where a row has fewer than ``k`` results.
        ids : ndarray of object, shape (b, k)
            The matching ids; ``None`` in padded positions.
        """
        k = check_k(k)
        queries = check_queries(queries, self._dim)
        exclude = normalize_exclude(exclude, len(queries))
        with self._lock:
            slots_excluded = self._exclude_slots(exclude)
            if len(self._table) == 0:
                scores = np.empty((len(queries), 0), np.float32)
                slots = np.empty((len(queries), 0), np.int64)
            else:
                scores, slots = self._search(queries, k, slots_excluded)
            found = self._table.ids_at(slots)
        return _pad(scores, found, k)

    def vector(self, item_id: Id) -> np.ndarray:
        """The stored vector of ``item_id`` (float32, shape (dim,)); UnknownIdError if not held."""
        item_id = check_id(item_id, "item id")
        with self._lock:
            if item_id not in self._table:
                raise UnknownIdError(f"id {item_id!r} is not in the index ({len(self)} items)")
            return self._vector(self._table.slot(item_id))

    def describe(self) -> dict[str, Any]:
        """Backend, kind, device, size, dim and the backend's parameters."""
        with self._lock:
            return {
                "backend": self.backend,
                "kind": self.kind,
                "device": self.device,
                "size": len(self),
                "dim": self._dim,
                "params": self._params(),
            }

    def save(self, path: str | PathLike) -> Path:
        """Write the index into directory ``path`` atomically (replacing what was there)."""
        path = Path(path)
        with self._lock, atomic_directory(path) as tmp:
            extra = self._save_payload(tmp)
            ids, slots = self._table.items()
            write_json(tmp / IDS_FILE, {"ids": ids, "slots": slots.tolist()})
            meta = {"format": FORMAT_VERSION, **self.describe(), **extra}
            write_json(tmp / META_FILE, meta)
        logger.info("saved %s index (%d items) to %s", self.kind, len(self), path)
        return path

    @classmethod
    def load(cls, path: str | PathLike, device: str = "auto") -> VectorIndex:
        """Read an index written by ``save``; ``device`` picks where it runs (GPU when available).

        Called on ``VectorIndex`` it returns whichever backend wrote the directory; called on a
        backend class it refuses a directory written by another backend.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a directory holding a saved vector index")
        meta = read_json(path / META_FILE)
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported index format {meta.get('format')!r}")
        backend = _backend_class(meta.get("backend", "?"))
        if cls is not VectorIndex and backend is not cls:
            raise ValueError(f"{path} holds a {meta['backend']!r} index, not {cls.backend!r}")
        stored = read_json(path / IDS_FILE)
        ids = check_ids(stored["ids"], f"{path / IDS_FILE} ids")
        slots = np.asarray(stored["slots"], dtype=np.int64)
        if len(slots) != len(ids):
            raise ValueError(f"{path / IDS_FILE}: {len(ids)} ids but {len(slots)} slots")
        index = backend._load_payload(path, meta, ids, slots, device)
        logger.info("loaded %s index (%d items) from %s", index.kind, len(index), path)
        return index

    # ---------------------------------------------------------------------------------- helpers
    def _exclude_slots(self, exclude) -> ExcludeSlots:
        if exclude is None:
            return None
        if isinstance(exclude, set):
            slots = self._table.lookup(exclude)
            return slots[slots >= 0]
        rows = [self._table.lookup(row) for row in exclude]
        return [row[row >= 0] for row in rows]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, dim={self._dim}, size={len(self)})"


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad result rows to ``k`` columns with -inf / None and mark empty slots the same way."""
    b, width = scores.shape
    out_scores = np.full((b, k), -np.inf, dtype=np.float32)
    out_ids = np.full((b, k), None, dtype=object)
    out_scores[:, :width] = scores
    out_ids[:, :width] = ids
    empty = np.equal(out_ids, None)
    out_scores[empty] = -np.inf
    return out_scores, out_ids
