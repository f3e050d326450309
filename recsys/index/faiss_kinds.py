"""FAISS building blocks: which structure for which catalogue, how to create it, tune it and run it.

Thresholds (``kind="auto"``), measured on 64-dim clustered vectors on a 2-core CPU
(``benchmarks/ann_recall.py``):

* CPU: exact ``flat`` below ``FLAT_THRESHOLD`` = 50,000 vectors (a single query scans 50k x 64 in
  about 0.4 ms on one core), ``hnsw`` (M=32, efConstruction=80) from there on.
* GPU (a FAISS GPU build): ``flat`` below ``GPU_FLAT_THRESHOLD`` = 1,000,000 vectors, ``ivf`` above
  (FAISS has no GPU HNSW).

``ivf`` uses nlist ~= 4 sqrt(n), but at most n / 39 so k-means has enough points per centroid
(small catalogues get few lists, down to one). Search-time knobs (HNSW efSearch, IVF nprobe) are
tuned after each build: the smallest value on a ladder (efSearch from 32) whose recall@10 against
exact search reaches the target (0.95) plus a margin of 0.01, measured on 256 proxy queries
(catalogue vectors moved by their nearest-neighbour distance, see ``proxy_queries``);
``FaissIndex.tune`` re-tunes on real queries (e.g. user vectors) when their distribution differs
from the items'.

Threads: a single query is fastest on one OpenMP thread (two threads on two shared cores made a
100k-item flat search 3x slower), batches are fastest on all cores; ``omp_threads`` sets the count
per call (OpenMP's setting is per calling thread, so concurrent callers do not interfere).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator

import numpy as np

from recsys.device import DeviceUnavailableError, faiss_gpu_available, resolve_device

try:
    import faiss
except ImportError:  # the GPU benchmark machines have torch but no FAISS
    faiss = None

logger = logging.getLogger(__name__)

KINDS = ("auto", "flat", "hnsw", "ivf")
FLAT_THRESHOLD = 50_000
GPU_FLAT_THRESHOLD = 1_000_000
HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 64  # used when tuning is off or the catalogue is too small to tune on
EF_LADDER = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
NPROBE_LADDER = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)
MIN_POINTS_PER_LIST = 39  # below this FAISS k-means warns and centroids are poor
TRAIN_POINTS_PER_LIST = 64  # sample size for IVF training, per list
TUNE_QUERIES = 256
TUNE_MIN_SIZE = 200
TUNE_MARGIN = 0.01
GPU_MAX_K = 2048  # FAISS GPU k-selection limit

SETTINGS = (
    "hnsw_m",
    "ef_construction",
    "ef_search",
    "nlist",
    "nprobe",
    "auto_tune",
    "target_recall",
    "flat_threshold",
    "max_tombstone_fraction",
    "num_threads",
    "single_thread_batch",
    "seed",
)
_OPTIONAL_INTS = ("ef_search", "nlist", "nprobe", "num_threads")
_REQUIRED_INTS = ("hnsw_m", "ef_construction", "flat_threshold", "single_thread_batch")

_gpu_resources = None


def require_faiss() -> None:
    """Raise a clear ImportError when FAISS is not installed."""
    if faiss is None:
        raise ImportError(
            "FAISS is not installed (pip install faiss-cpu, or the faiss GPU build); "
            "use make_index(kind='torch') for exact search without it"
        )


def check_settings(**settings) -> dict:
    """Validate FaissIndex settings (positive ints, fractions in range); return them as a dict."""
    for name in _OPTIONAL_INTS + _REQUIRED_INTS:
        value = settings[name]
        if value is None and name in _OPTIONAL_INTS:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 < settings["target_recall"] <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {settings['target_recall']!r}")
    if not 0.0 < settings["max_tombstone_fraction"] < 1.0:
        raise ValueError(
            f"max_tombstone_fraction must be in (0, 1), got {settings['max_tombstone_fraction']!r}"
        )
    settings["auto_tune"] = bool(settings["auto_tune"])
    settings["seed"] = int(settings["seed"])
    return {name: settings[name] for name in SETTINGS}


def resolve_gpu(device, kind: str) -> int | None:
    """The CUDA device number FAISS should use for ``device``, or None for the CPU.

    ``"auto"`` takes the GPU only with a FAISS GPU build (and never for HNSW); an explicit
    ``"cuda"`` without one raises ``DeviceUnavailableError``.
    """
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return 0 if kind != "hnsw" and faiss_gpu_available() else None
    if name == "cpu":
        return None
    torch_device = resolve_device(device)  # DeviceUnavailableError when torch sees no GPU
    if torch_device.type != "cuda":
        return None
    if not faiss_gpu_available():
        raise DeviceUnavailableError(
            f"device={device!r} was requested but the installed FAISS has no GPU support; "
            "use device='cpu', or make_index(kind='torch', device='cuda') for exact GPU search"
        )
    if kind == "hnsw":
        raise ValueError(
            "FAISS has no GPU HNSW: use kind='flat' or 'ivf' on the GPU, or device='cpu'"
        )
    return torch_device.index or 0


def choose_kind(n: int, on_gpu: bool, flat_threshold: int = FLAT_THRESHOLD) -> str:
    """The structure ``kind="auto"`` uses for ``n`` vectors."""
    if on_gpu:
        return "flat" if n < GPU_FLAT_THRESHOLD else "ivf"
    return "flat" if n < flat_threshold else "hnsw"


def nlist_for(n: int) -> int:
    """IVF list count for ``n`` training vectors: ~4 sqrt(n), at most n/39, at least 1."""
    return max(1, min(int(round(4 * math.sqrt(max(n, 1)))), n // MIN_POINTS_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """nprobe used when tuning is off: 1/16 of the lists, at least 8 (never more than nlist)."""
    return min(nlist, max(8, nlist // 16))


def new_flat(dim: int):
    """An id-mapped exact inner-product index."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def new_hnsw(dim: int, m: int, ef_construction: int):
    """An id-mapped HNSW inner-product index (cannot remove: the caller keeps tombstones)."""
    inner = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = ef_construction
    return faiss.IndexIDMap2(inner)


def new_ivf(dim: int, train: np.ndarray, nlist: int, seed: int):
    """An IVF-Flat inner-product index trained on ``train`` (>= 1 vector), storing labels itself.

    IVF keeps its own int64 ids (with a hash-table direct map for ``remove_ids``/``reconstruct``);
    an IndexIDMap2 wrapper would misalign its id map after ``remove_ids`` on IVF.
    """
    nlist = max(1, min(nlist, len(train)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    sample = train
    limit = nlist * TRAIN_POINTS_PER_LIST
    if len(train) > limit:
        rows = np.random.default_rng(seed).choice(len(train), limit, replace=False)
        sample = train[np.sort(rows)]
    index.train(sample)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.referenced_objects = [quantizer]  # keep the quantizer alive next to the index
    return index


def base_of(index):
    """The HNSW or IVF object whose search knobs we set (the index itself for IVF)."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.downcast_index(index.index)
    return faiss.downcast_index(index)


def set_search_param(index, kind: str, value: int | None, on_gpu: bool = False) -> None:
    """Set efSearch (HNSW) or nprobe (IVF) on a CPU or GPU index."""
    if value is None or kind == "flat":
        return
    if on_gpu:
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", int(value))
    elif kind == "hnsw":
        base_of(index).hnsw.efSearch = int(value)
    else:
        base_of(index).nprobe = int(value)


class ExactView:
    """Exact search over what an HNSW or IVF index stores (for k close to the catalogue size)."""

    def __init__(self, index, kind: str) -> None:
        self._index = index
        self._kind = kind
        self.ntotal = index.ntotal
        if kind == "hnsw":  # scan the flat storage under the graph, map rows to labels
            self._storage = faiss.downcast_index(base_of(index).storage)
            self._labels = faiss.vector_to_array(index.id_map)
        else:  # IVF probing every list is exact
            self._params = faiss.SearchParametersIVF(nprobe=int(index.nlist))

    def search(self, queries: np.ndarray, k: int):
        if self._kind != "hnsw":
            return self._index.search(queries, k, params=self._params)
        dist, rows = self._storage.search(queries, k)
        return dist, np.where(rows >= 0, self._labels[np.maximum(rows, 0)], -1)


def stored_vectors(index, kind: str, labels: np.ndarray) -> np.ndarray:
    """The float32 vectors stored under ``labels`` in a CPU index."""
    if len(labels) == 0:
        return np.empty((0, index.d), np.float32)
    return np.asarray(index.reconstruct_batch(np.asarray(labels, dtype=np.int64)), np.float32)


@contextlib.contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenMP threads in FAISS (restored afterwards)."""
    previous = faiss.omp_get_max_threads()
    if n == previous:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def gpu_resources():
    """The process-wide FAISS GPU resources (created on first use)."""
    global _gpu_resources
    if _gpu_resources is None:
        _gpu_resources = faiss.StandardGpuResources()
    return _gpu_resources


def to_gpu(index, device_no: int):
    """A GPU copy of a CPU flat/IVF index (FAISS GPU build only)."""
    return faiss.index_cpu_to_gpu(gpu_resources(), device_no, index)


def proxy_queries(vectors: np.ndarray, seed: int) -> np.ndarray:
    """Queries for tuning: sampled catalogue vectors moved, in a random direction, as far as their
    nearest neighbour is.

    An unmoved catalogue vector lands HNSW's greedy search on itself and overstates recall; moved by
    its nearest-neighbour distance it sits between items like a fresh query, and on the mixtures we
    tried its recall never exceeded that of fresh queries from the same distribution.
    """
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), min(len(vectors), TUNE_QUERIES), replace=False)]
    if len(vectors) < 2:
        return sample
    squared = faiss.knn(sample, vectors, 2)[0][:, 1]  # L2^2; column 0 is the vector itself
    radius = np.sqrt(np.maximum(squared, 0.0))[:, None]
    direction = rng.standard_normal(sample.shape).astype(np.float32)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    return (sample + radius * direction).astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (labels) present in the same row of ``found``."""
    k = truth.shape[1]
    pairs = zip(found, truth, strict=True)
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in pairs)
    return hits / (k * len(truth))


def search_ladder(kind: str, nlist: int = 0) -> tuple[int, ...]:
    """Candidate efSearch (HNSW) or nprobe (IVF, up to ``nlist``) values, cheapest first."""
    if kind == "hnsw":
        return EF_LADDER
    return tuple(v for v in NPROBE_LADDER if v < nlist) + (nlist,)


def tune_search_param(search, ladder, queries: np.ndarray, truth: np.ndarray, target: float):
    """Smallest ``ladder`` value whose recall (``search(queries, k, value)``) reaches ``target``.

    Returns ``(value, recall)``; the largest value tried when none reaches the target.
    """
    goal = min(1.0, target + TUNE_MARGIN)
    value, recall = ladder[0], 0.0
    for value in ladder:
        recall = recall_at_k(search(queries, truth.shape[1], value), truth)
        if recall >= goal:
            return value, recall
    logger.warning(
        "search tuning stopped at %d with recall@%d %.3f < target %.3f",
        value,
        truth.shape[1],
        recall,
        target,
    )
    return value, recall
