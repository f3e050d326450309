"""ANN recall@10, build time, latency, throughput and memory of the vector indexes.

Builds each index with its default settings over clustered vectors (a gaussian mixture with
lognormal norms, like trained item embeddings) and measures, per catalogue size:

* recall@10 of the approximate indexes against exact search (1000 queries from the same mixture);
* build time (including the automatic efSearch/nprobe tuning);
* single-query latency p50/p99 over 1000 queries sent one at a time through the ``VectorIndex`` API
  (and the raw FAISS call, to show the wrapper's overhead);
* batched throughput (one call with all 1000 queries);
* memory per million items: the saved index size and the process RSS growth during the build.

Example::

    nice -n 10 python benchmarks/ann_recall.py --sizes 10000,100000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recsys.index import FaissIndex, TorchIndex, make_index
from recsys.index.faiss_kinds import choose_kind, faiss, omp_threads

KINDS = ("auto", "flat", "hnsw", "ivf", "torch")


def mixture(n, dim, clusters, noise, normalize, seed: int, stream: int):
    """``n`` vectors from the gaussian mixture fixed by ``seed``; ``stream`` picks the draw."""
    centres = np.random.default_rng(seed).standard_normal((clusters, dim)).astype(np.float32)
    rng = np.random.default_rng([seed, stream, n])
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 200_000):  # blocks keep the temporaries small at 1M+
        m = min(200_000, n - start)
        block = centres[rng.integers(0, clusters, m)]
        block += noise * rng.standard_normal((m, dim), dtype=np.float32)
        block *= rng.lognormal(0.0, 0.3, (m, 1)).astype(np.float32)
        if normalize:
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    if faiss is not None:
        return faiss.knn(queries, items, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    scores = torch.from_numpy(queries) @ torch.from_numpy(items).T
    return torch.topk(scores, k, dim=1).indices.numpy()


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in pairs]))


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1e3, 4)


def one_at_a_time(search, queries: np.ndarray) -> list[float]:
    for q in queries[:20]:  # warm-up
        search(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - start)
    return times


def make(kind: str, dim: int):
    if kind == "torch":
        return TorchIndex(dim, device="cpu")
    if kind == "auto":
        return make_index("auto", dim, device="cpu")
    return FaissIndex(dim, kind=kind, device="cpu")


def measure(kind, items, ids, queries, truth_rows, k) -> dict:
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    index = make(kind, items.shape[1]).build(ids, items)
    build_s = time.perf_counter() - start
    rss_growth = rss_bytes() - rss_before
    label = f"auto->{index.kind}" if kind == "auto" else index.kind
    found = index.search(queries, k)[1]
    ids_arr = np.asarray(ids, dtype=object)
    recall = recall_at(found, ids_arr[truth_rows])
    api = one_at_a_time(lambda q: index.search(q, k), queries)
    raw = None
    if isinstance(index, FaissIndex):
        inner = index._index  # the FAISS object, to show the wrapper's own overhead
        with omp_threads(1):
            raw = one_at_a_time(lambda q: inner.search(q[None, :], k), queries)
    start = time.perf_counter()
    index.search(queries, k)
    batch_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = index.save(Path(tmp) / "index")
        saved = sum(p.stat().st_size for p in path.iterdir())
    params = index.describe()["params"]
    n = len(items)
    row = {
        "n_items": n,
        "index": label,
        "exact": index.kind in ("flat", "exact"),
        "recall@10": round(recall, 4),
        "build_s": round(build_s, 2),
        "p50_ms": percentile_ms(api, 50),
        "p99_ms": percentile_ms(api, 99),
        "raw_faiss_p50_ms": percentile_ms(raw, 50) if raw else None,
        "raw_faiss_p99_ms": percentile_ms(raw, 99) if raw else None,
        "batch_qps": round(len(queries) / batch_s, 1),
        "saved_mb_per_m": round(saved / n * 1e6 / 2**20, 1),
        "rss_mb_per_m": round(max(rss_growth, 0) / n * 1e6 / 2**20, 1),
        "search_param": params.get("search_value_in_use"),
        "tuned_recall": params.get("tuned_recall@10"),
    }
    return row


def run(args) -> dict:
    rows = []
    for n in args.sizes:
        shape = (args.dim, args.clusters, args.noise, args.normalize, args.seed)
        items = mixture(n, *shape, stream=0)
        queries = mixture(args.queries, *shape, stream=1)  # same mixture, fresh draws
        truth = exact_top(items, queries, args.k)
        ids = [f"item-{i}" for i in range(n)]
        auto_kind = choose_kind(n, on_gpu=False) if "auto" in args.kinds else None
        for kind in args.kinds:
            if kind == auto_kind or (kind in ("flat", "torch") and n > args.max_exact_items):
                continue  # measured as the auto row / too slow to time one query at a time
            row = measure(kind, items, ids, queries, truth, args.k)
            rows.append(row)
            print(f"measured {row['index']} at {n}: {row}", file=sys.stderr, flush=True)
    return {
        "config": {
            "sizes": args.sizes,
            "dim": args.dim,
            "clusters": args.clusters,
            "noise": args.noise,
            "normalize": args.normalize,
            "queries": args.queries,
            "k": args.k,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "faiss": getattr(faiss, "__version__", None),
            "faiss_threads_batch": faiss.omp_get_max_threads() if faiss else None,
            "faiss_threads_single_query": 1,
        },
        "results": rows,
    }


COLUMNS = (  # (result key, heading, width)
    ("n_items", "items", 8),
    ("index", "index", 11),
    ("recall@10", "recall@10", 9),
    ("build_s", "build_s", 8),
    ("p50_ms", "p50_ms", 7),
    ("p99_ms", "p99_ms", 7),
    ("raw_faiss_p50_ms", "raw_p50", 7),
    ("raw_faiss_p99_ms", "raw_p99", 7),
    ("batch_qps", "batch_q/s", 9),
    ("saved_mb_per_m", "MB/M_file", 9),
    ("rss_mb_per_m", "MB/M_rss", 8),
    ("search_param", "ef|nprobe", 9),
)


def table(report: dict) -> str:
    lines = [" ".join(f"{head:>{width}}" for _, head, width in COLUMNS)]
    for row in report["results"]:
        cells = ("-" if row[key] is None else str(row[key]) for key, _, _ in COLUMNS)
        lines.append(
            " ".join(f"{cell:>{w}}" for cell, (_, _, w) in zip(cells, COLUMNS, strict=True))
        )
    return "\n".join(lines)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated sizes, e.g. 10000,100000,1000000"
    )
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=1.0, help="cluster spread (centres ~N(0,1))")
    parser.add_argument("--normalize", action="store_true", help="unit-norm vectors (cosine)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-exact-items", type=int, default=2_000_000, help="skip exact rows above this size"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {KINDS}")
    if faiss is None:
        args.kinds = [k for k in args.kinds if k == "torch"]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        failing = [r for r in report["results"] if not r["exact"] and r["recall@10"] < 0.95]
        print(f"\nANN recall@10 >= 0.95 for every default-settings index: {not failing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
