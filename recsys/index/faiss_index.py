"""FAISS backend: Flat (exact), HNSW or IVF inner-product search, on the GPU when FAISS can.

Labels are int64 slots handed out by a counter; every insert (and every update) gets a fresh label
so nothing ever needs an in-place overwrite. Flat and IVF remove for real; HNSW cannot, so removed
labels become tombstones that searches skip (oversampling, then widening when a row runs short) and
the graph is rebuilt once tombstones pass ``max_tombstone_fraction``.

On the GPU the CPU index stays the master (exact removal, ``vector``, ``save``) and a GPU copy
serves searches: inserts go to both, removals are tombstones in the copy until it is re-uploaded.
Saving therefore always writes the CPU form, and loading moves it to the GPU when one is usable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from recsys.index import faiss_kinds as fk
from recsys.index.base import ExcludeSlots, VectorIndex
from recsys.index.checks import Id, check_k, check_queries
from recsys.index.faiss_kinds import faiss
from recsys.index.filtered_search import filtered_search

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"


class FaissIndex(VectorIndex):
    """FAISS inner-product index: ``kind`` "flat", "hnsw", "ivf" or "auto" (by catalogue size).

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"auto", "flat", "hnsw", "ivf"}
        ``"auto"`` picks by size at each build (see ``recsys.index.faiss_kinds``) and rebuilds once
        adds/removals move the catalogue well past a threshold.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"auto"`` uses the GPU when ``recsys.device.faiss_gpu_available()``; ``"cuda"`` without a
        FAISS GPU build (or with ``kind="hnsw"``) fails here, at construction.
    hnsw_m, ef_construction : int
        HNSW graph degree and build beam (32, 80).
    ef_search, nprobe : int, optional
        Fixed search knobs; when None they are tuned after each build (``auto_tune``) to reach
        ``target_recall`` recall@10 on a sample of the catalogue.
    nlist : int, optional
        IVF lists (default ~4 sqrt(n), capped at n / 39).
    max_tombstone_fraction : float
        Rebuild HNSW (re-upload a GPU copy) once this share of stored vectors is removed.
    num_threads : int, optional
        OpenMP threads for batched searches (default: FAISS's default, all cores).
    single_thread_batch : int
        Batches smaller than this search on one thread (lowest single-query latency).
    """

    backend = "faiss"

    def __init__(
        self,
        dim: int,
        kind: str = "auto",
        device: str = "auto",
        *,
        hnsw_m: int = fk.HNSW_M,
        ef_construction: int = fk.EF_CONSTRUCTION,
        ef_search: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        auto_tune: bool = True,
        target_recall: float = 0.95,
        flat_threshold: int = fk.FLAT_THRESHOLD,
        max_tombstone_fraction: float = 0.2,
        num_threads: int | None = None,
        single_thread_batch: int = 16,
        seed: int = 0,
    ) -> None:
        fk.require_faiss()
        super().__init__(dim)
        if kind not in fk.KINDS:
            raise ValueError(f"kind must be one of {fk.KINDS}, got {kind!r}")
        self._settings = fk.check_settings(
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            nlist=nlist,
            nprobe=nprobe,
            auto_tune=auto_tune,
            target_recall=target_recall,
            flat_threshold=flat_threshold,
            max_tombstone_fraction=max_tombstone_fraction,
            num_threads=num_threads,
            single_thread_batch=single_thread_batch,
            seed=seed,
        )
        self._requested = kind
        self._gpu_no = fk.resolve_gpu(device, kind)
        self._kind = kind if kind != "auto" else self._auto_kind(0)
        self._reset()

    # ----------------------------------------------------------------------------- state
    def _reset(self) -> None:
        self._table.clear()
        self._index = None  # the CPU master
        self._gpu = None  # the GPU copy that serves searches, when there is one
        self._next_label = 0
        self._dead = np.zeros(0, dtype=bool)  # by label: removed but still in the searched index
        self._n_dead = 0
        self._nlist: int | None = None
        self._trained_n = 0
        self._search_value: int | None = None
        self._tuned_recall: float | None = None

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def device(self) -> str:
        return "cpu" if self._gpu_no is None or self._kind == "hnsw" else f"cuda:{self._gpu_no}"

    def _auto_kind(self, n: int) -> str:
        return fk.choose_kind(n, self._gpu_no is not None, self._settings["flat_threshold"])

    def _mark_dead(self, labels: np.ndarray) -> None:
        if len(self._dead) < self._next_label:
            grown = np.zeros(max(self._next_label, 2 * len(self._dead)), dtype=bool)
            grown[: len(self._dead)] = self._dead
            self._dead = grown
        self._dead[labels] = True
        self._n_dead = int(self._dead.sum())

    def _clear_dead(self) -> None:
        self._dead = np.zeros(0, dtype=bool)
        self._n_dead = 0

    # ------------------------------------------------------------------------ mutations
    def _create(self, train: np.ndarray) -> None:
        settings = self._settings
        self._kind = self._auto_kind(len(train)) if self._requested == "auto" else self._requested
        if self._kind == "flat":
            self._index = fk.new_flat(self._dim)
        elif self._kind == "hnsw":
            self._index = fk.new_hnsw(self._dim, settings["hnsw_m"], settings["ef_construction"])
        elif len(train):  # ivf; an empty IVF waits for the first vectors to train on
            nlist = settings["nlist"] or fk.nlist_for(len(train))
            if nlist > len(train):
                logger.warning("nlist=%d > %d training vectors: using %d", nlist, *[len(train)] * 2)
            self._index = fk.new_ivf(self._dim, train, nlist, settings["seed"])
            self._nlist = int(self._index.nlist)
            self._trained_n = len(train)

    def _build(self, ids: list[Id], vectors: np.ndarray) -> None:
        self._reset()
        self._create(vectors)
        if ids:
            self._insert(ids, vectors)
        self._upload()
        self._tune_after_build(vectors)

    def _insert(self, ids: list[Id], vectors: np.ndarray) -> None:
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        self._next_label += len(ids)
        self._index.add_with_ids(vectors, labels)
        if self._gpu is not None:
            self._gpu.add_with_ids(vectors, labels)
        self._table.assign(ids, labels)

    def _discard(self, labels: np.ndarray) -> None:
        if self._gpu is not None:  # exact on the master, tombstones in the GPU copy
            self._index.remove_ids(labels)
            self._mark_dead(labels)
        elif self._kind == "hnsw":
            self._mark_dead(labels)
        else:
            self._index.remove_ids(labels)

    def _add(self, ids: list[Id], vectors: np.ndarray) -> None:
        if self._index is None:  # first vectors of an empty index (IVF trains on them)
            self._build(ids, vectors)
            return
        slots = self._table.lookup(ids)
        known = np.flatnonzero(slots >= 0)
        if len(known):
            self._discard(self._table.drop([ids[i] for i in known]))
        self._insert(ids, vectors)
        self._after_mutation()

    def _remove(self, ids: list[Id]) -> None:
        self._discard(self._table.drop(ids))
        self._after_mutation()

    def _after_mutation(self) -> None:
        searched = self._gpu if self._gpu is not None else self._index
        if self._n_dead > self._settings["max_tombstone_fraction"] * max(searched.ntotal, 1):
            if self._gpu is not None:
                logger.info("re-uploading the GPU index to drop %d tombstones", self._n_dead)
                self._upload()
            else:
                self._rebuild(f"{self._n_dead} tombstones of {searched.ntotal} vectors")
            return
        n = len(self._table)
        threshold = self._settings["flat_threshold"]
        if self._gpu_no is not None:
            threshold = fk.GPU_FLAT_THRESHOLD
        if self._requested == "auto" and (
            (self._kind == "flat" and n >= 2 * threshold)
            or (self._kind != "flat" and n < threshold // 2)
        ):
            self._rebuild(f"{n} items call for {self._auto_kind(n)} instead of {self._kind}")
        elif (
            self._kind == "ivf"
            and self._settings["nlist"] is None
            and n >= 4 * max(self._trained_n, 1)
            and fk.nlist_for(n) >= 2 * (self._nlist or 1)
        ):
            self._rebuild(f"IVF trained on {self._trained_n} vectors now holds {n}")

    def _rebuild(self, reason: str) -> None:
        ids, labels = self._table.items()
        vectors = fk.stored_vectors(self._index, self._kind, labels)
        logger.info("rebuilding the %s index (%d items): %s", self._kind, len(ids), reason)
        self._build(ids, vectors)

    def _upload(self) -> None:
        if self._gpu_no is None or self._index is None or self._kind == "hnsw":
            return
        self._gpu = fk.to_gpu(self._index, self._gpu_no)
        fk.set_search_param(self._gpu, self._kind, self._search_value, on_gpu=True)
        self._clear_dead()

    # --------------------------------------------------------------------------- tuning
    def _set_search_value(self, value: int | None) -> None:
        self._search_value = value
        if self._index is not None:
            fk.set_search_param(self._index, self._kind, value)
        if self._gpu is not None:
            fk.set_search_param(self._gpu, self._kind, value, on_gpu=True)

    def _tune_after_build(self, vectors: np.ndarray) -> None:
        self._tuned_recall = None
        if self._kind == "flat" or self._index is None:
            self._set_search_value(None)
            return
        fixed = self._settings["ef_search" if self._kind == "hnsw" else "nprobe"]
        if fixed is not None:
            self._set_search_value(fixed)
        elif not self._settings["auto_tune"] or len(vectors) < fk.TUNE_MIN_SIZE:
            small = len(vectors) < fk.TUNE_MIN_SIZE
            ivf_value = self._nlist if small else fk.default_nprobe(self._nlist)
            self._set_search_value(fk.EF_SEARCH if self._kind == "hnsw" else ivf_value)
        else:
            labels = np.arange(len(vectors), dtype=np.int64)  # a fresh build labels rows 0..n-1
            self._tune(vectors, labels, None, self._settings["target_recall"], 10)

    def _tune(self, vectors, labels, queries, target: float, k: int) -> dict[str, Any]:
        if queries is None:
            queries = fk.proxy_queries(vectors, self._settings["seed"])
        k = min(k, len(vectors))
        truth = labels[faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)[1]]
        searched = self._gpu if self._gpu is not None else self._index

        def search(q: np.ndarray, kk: int, value: int) -> np.ndarray:
            self._set_search_value(value)
            return searched.search(q, kk)[1]

        ladder = fk.search_ladder(self._kind, self._nlist or 1)
        value, recall = fk.tune_search_param(search, ladder, queries, truth, target)
        self._set_search_value(value)
        self._tuned_recall = recall
        param = "ef_search" if self._kind == "hnsw" else "nprobe"
        logger.info("tuned %s=%d: recall@%d %.3f (target %.2f)", param, value, k, recall, target)
        return {"param": param, "value": value, "recall": recall, "k": k}

    def tune(self, queries=None, target_recall: float | None = None, k: int = 10) -> dict[str, Any]:
        """Re-tune efSearch / nprobe to the smallest value reaching ``target_recall`` recall@k.

        Parameters
        ----------
        queries : array-like (b, dim), optional
            Representative queries (e.g. user vectors); default a sample of the indexed vectors.
        target_recall : float, optional
            Defaults to the index's ``target_recall``.
        k : int
            Recall cut-off.

        Returns
        -------
        dict
            ``param``, ``value``, ``recall`` and ``k``; flat indexes return recall 1.0.
        """
        k = check_k(k)
        target = self._settings["target_recall"] if target_recall is None else float(target_recall)
        queries = None if queries is None else check_queries(queries, self._dim)
        with self._lock:
            if self._kind == "flat" or len(self._table) == 0:
                return {"param": None, "value": None, "recall": 1.0, "k": k}
            labels = self._table.items()[1]
            vectors = fk.stored_vectors(self._index, self._kind, labels)
            return self._tune(vectors, labels, queries, target, k)

    # --------------------------------------------------------------------------- search
    def _search(self, queries: np.ndarray, k: int, exclude: ExcludeSlots):
        threads = 1 if len(queries) < self._settings["single_thread_batch"] else None
        threads = threads or self._settings["num_threads"] or faiss.omp_get_max_threads()
        searched = self._gpu if self._gpu is not None else self._index
        share = self._n_dead / max(searched.ntotal, 1)
        with fk.omp_threads(threads):
            return filtered_search(self._target, queries, k, exclude, share)

    def _target(self, kk: int):
        """The index to search for ``kk`` candidates and its tombstone mask (None: none).

        Asked for half the catalogue or more, HNSW and IVF may come back short, so an exact scan
        of their stored vectors answers instead; the GPU copy serves up to FAISS's GPU k limit.
        """
        exact = self._kind != "flat" and 2 * kk >= self._index.ntotal
        if self._gpu is not None and kk <= fk.GPU_MAX_K and not exact:
            return self._gpu, self._dead if self._n_dead else None
        dead = self._dead if self._n_dead and self._gpu is None else None  # else: master is exact
        return (fk.ExactView(self._index, self._kind) if exact else self._index), dead

    def _vector(self, slot: int) -> np.ndarray:
        return fk.stored_vectors(self._index, self._kind, np.array([slot]))[0]

    # -------------------------------------------------------------------------- persist
    def _params(self) -> dict[str, Any]:
        searched = self._gpu if self._gpu is not None else self._index
        return {
            **self._settings,
            "requested_kind": self._requested,
            "nlist_in_use": self._nlist,
            "search_value_in_use": self._search_value,
            "tuned_recall@10": self._tuned_recall,
            "stored_vectors": 0 if searched is None else int(searched.ntotal),
            "tombstones": self._n_dead,
            "gpu_copy": self._gpu is not None,
        }

    def _save_payload(self, directory: Path) -> dict[str, Any]:
        if self._index is not None:
            faiss.write_index(self._index, str(directory / INDEX_FILE))  # the CPU master
        dead = np.flatnonzero(self._dead) if self._gpu is None else np.zeros(0, np.int64)
        return {
            "state": {
                "next_label": self._next_label,
                "dead": dead.tolist(),
                "trained_n": self._trained_n,
            }
        }

    @classmethod
    def _load_payload(cls, directory, meta, ids, slots, device):
        params, state = meta["params"], meta["state"]
        requested = params["requested_kind"]
        settings = {name: params[name] for name in fk.SETTINGS}
        index = cls(meta["dim"], kind=requested, device=device, **settings)
        index._kind = meta["kind"]
        path = directory / INDEX_FILE
        if path.exists():
            index._index = faiss.read_index(str(path))
        elif ids:
            raise FileNotFoundError(f"{path} is missing but {len(ids)} ids were saved")
        index._next_label = int(state["next_label"])
        index._trained_n = int(state["trained_n"])
        index._nlist = params["nlist_in_use"]
        index._table.assign(ids, slots)
        dead = np.asarray(state["dead"], dtype=np.int64)
        if len(dead):
            index._mark_dead(dead)
        stored = 0 if index._index is None else index._index.ntotal
        if stored != len(ids) + len(dead):
            raise ValueError(
                f"{directory}: the FAISS file holds {stored} vectors but the metadata lists "
                f"{len(ids)} ids and {len(dead)} tombstones"
            )
        index._tuned_recall = params["tuned_recall@10"]
        index._set_search_value(params["search_value_in_use"])
        index._upload()
        return index
