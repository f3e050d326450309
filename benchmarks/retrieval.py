"""In-process latency of personalised recommendations with filters, next to raw FAISS search.

    python benchmarks/retrieval.py [--sizes 10000,100000,1000000] [--dim 64] [--json]

For each catalogue size a realistic synthetic serving bundle is built directly in the served
format of the default model (``BlendScorer`` arrays, no training): clustered item vectors, context
vectors near them, user vectors mixing a few clusters, co-visitation neighbour lists drawn mostly
from an item's own cluster, Zipf popularity, user histories of 20-50 events (views, carts,
purchases) and item metadata (category, price, stock). No EASE at these sizes (the trained model
skips it past 20k items as well).

Then, single requests one after another on one thread (the serving pattern):

* ``engine``: ``RecommendationEngine.recommend(user, k=10, events=<3 live events>, filters=...)``
  with ``in_stock`` + ``exclude_purchased`` + a price range (the full retrieve -> filter -> rank
  path, including building the answer rows);
* ``faiss``: the FAISS index the engine holds, searched directly for the same queries and the same
  number of candidates the engine asks for, on one OpenMP thread (as the engine searches);
* ``index``: the same through the ``VectorIndex`` wrapper (id mapping, argument checks).

Reported per size: p50 / p99 / mean milliseconds of each, the index kind, and memory: bytes per
million items of the item-side model arrays and of the index, and the user-side arrays apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np
import torch

from recsys.bundle import ServingBundle
from recsys.data.frame import pd
from recsys.models.blend import BlendScorer, event_codes
from recsys.models.hybrid import DEFAULT_PARAMS, HybridModel, set_scales
from recsys.recommend import Filters, RecommendationEngine

logger = logging.getLogger("benchmarks.retrieval")

ITEM_ARRAYS = ("item_vectors", "context_vectors", "next_index", "next_values", "cross_index",
               "cross_values", "popularity")  # fmt: skip
FILTERS = Filters(exclude_purchased=True, in_stock=True, min_price=5.0, max_price=300.0)
EVENT_KINDS = np.array(["view", "view", "view", "click", "add_to_cart", "purchase"], dtype=object)


def _clustered(rng, n: int, dim: int, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, cluster of each) with clusters of similar size and varied norms."""
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    cluster = np.sort(rng.integers(0, n_clusters, n))
    vectors = centres[cluster] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors *= rng.uniform(0.5, 1.5, (n, 1)).astype(np.float32) / np.sqrt(dim)
    return vectors, cluster


def _neighbours(rng, cluster: np.ndarray, m: int, spread: float = 0.1):
    """(index, values) co-visitation lists: mostly same-cluster items, weights summing to 1."""
    n = len(cluster)
    starts = np.searchsorted(cluster, cluster, side="left")
    sizes = np.searchsorted(cluster, cluster, side="right") - starts
    index = np.empty((n, m), dtype=np.int64)
    for lo in range(0, n, 100_000):  # blocks bound the temporaries at 1M items
        hi = min(n, lo + 100_000)
        same = starts[lo:hi, None] + (rng.random((hi - lo, m)) * sizes[lo:hi, None]).astype(
            np.int64
        )
        anywhere = rng.integers(0, n, (hi - lo, m))
        index[lo:hi] = np.where(rng.random((hi - lo, m)) < spread, anywhere, same)
    index[index == np.arange(n)[:, None]] = -1  # never the item itself
    values = (1.0 / np.arange(1, m + 1, dtype=np.float32))[None, :].repeat(n, 0)
    values[index < 0] = 0.0
    values /= np.maximum(values.sum(axis=1, keepdims=True), 1e-12)
    return index, values


def _histories(rng, n_users: int, cluster: np.ndarray, popularity: np.ndarray):
    """History arrays: 20-50 events per user from 1-3 clusters, time-ordered over 90 days."""
    n = len(cluster)
    starts = np.searchsorted(cluster, np.arange(cluster.max() + 1), side="left")
    sizes = np.searchsorted(cluster, np.arange(cluster.max() + 1), side="right") - starts
    lengths = rng.integers(20, 51, n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    total = int(indptr[-1])
    owner = np.repeat(np.arange(n_users), lengths)
    interests = rng.integers(0, len(starts), (n_users, 3))
    chosen = interests[owner, rng.integers(0, 3, total)]
    items = starts[chosen] + (rng.random(total) * np.maximum(sizes[chosen], 1)).astype(np.int64)
    popular = rng.choice(n, total, p=popularity / popularity.sum())
    items = np.where(rng.random(total) < 0.2, popular, np.minimum(items, n - 1))
    now = 1.7e9
    times = now - rng.uniform(0, 90 * 86_400, total)
    order = np.lexsort((times, owner))  # time order within each user
    return {
        "history_indptr": indptr,
        "history_items": items[order].astype(np.int64),
        "history_timestamps": times[order],
        "history_event_codes": event_codes(EVENT_KINDS[rng.integers(0, len(EVENT_KINDS), total)]),
    }


def synthetic_bundle(
    n_items: int, dim: int = 64, n_users: int = 100_000, neighbours: int = 100, seed: int = 0
) -> ServingBundle:
    """A serving bundle of the default model's format with synthetic arrays (see module doc)."""
    rng = np.random.default_rng(seed)
    items, cluster = _clustered(rng, n_items, dim, max(2, n_items // 100))
    popularity = np.floor(1e5 / np.arange(1, n_items + 1) ** 0.9).astype(np.float32) + 1.0
    popularity = popularity[rng.permutation(n_items)]
    next_index, next_values = _neighbours(rng, cluster, neighbours)
    cross_index, cross_values = _neighbours(rng, cluster, neighbours, spread=0.3)
    arrays = {
        "item_vectors": items,
        "context_vectors": items + 0.3 * rng.standard_normal(items.shape).astype(np.float32)
        / np.sqrt(dim),
        "next_index": next_index, "next_values": next_values,
        "cross_index": cross_index, "cross_values": cross_values,
        "popularity": popularity,
    }  # fmt: skip
    user_centres = items[rng.integers(0, n_items, (n_users, 3))].mean(axis=1)
    arrays["user_vectors"] = (user_centres + 0.05 * rng.standard_normal(user_centres.shape)).astype(
        np.float32
    )
    arrays["mean_user"] = arrays["user_vectors"].mean(axis=0)
    arrays |= _histories(rng, n_users, cluster, popularity)
    config = HybridModel(tune=False, device="cpu").scorer_config(dict(DEFAULT_PARAMS))
    config["blend_weights"]["ease"] = 0.0
    scorer = BlendScorer(arrays, config, device="cpu")
    set_scales(scorer, np.arange(0, n_users, max(1, n_users // 32))[:32], batch=8)
    categories = np.array([f"cat{c:02d}" for c in range(50)], dtype=object)
    table = pd.DataFrame(
        {
            "item_id": [f"i{i:07d}" for i in range(n_items)],
            "title": "",
            "category": categories[cluster % len(categories)],
            "price": np.round(rng.lognormal(3.5, 1.0, n_items), 2),
            "in_stock": rng.random(n_items) < 0.9,
        }
    )
    return ServingBundle(
        kind="default",
        config=scorer.config,
        arrays=arrays,
        item_ids=table["item_id"].to_numpy(dtype=object),
        user_ids=np.array([f"u{u:07d}" for u in range(n_users)], dtype=object),
        items=table,
    )


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def _live_events(rng, engine: RecommendationEngine, now: float) -> list[dict]:
    picks = rng.integers(0, len(engine.item_ids), 3)
    return [
        {"item_id": str(engine.item_ids[i]), "timestamp": now - 60.0 * (3 - j),
         "event_type": ("view", "view", "add_to_cart")[j]}
        for j, i in enumerate(picks)
    ]  # fmt: skip


def _time_engine(engine: RecommendationEngine, users, events, now: float) -> tuple[dict, float]:
    """(latency percentiles, share of answers with all 10 items) of single requests."""
    for i in range(min(50, len(users))):  # warm-up: caches, allocator, first-call costs
        engine.recommend(users[i], k=10, events=events[i], filters=FILTERS, now=now)
    seconds, full = [], 0
    for user, live in zip(users, events, strict=True):
        t0 = time.perf_counter()
        answer = engine.recommend(user, k=10, events=live, filters=FILTERS, now=now)
        seconds.append(time.perf_counter() - t0)
        full += len(answer.items) == 10
    return _percentiles(seconds), full / len(users)


def _time_faiss(engine: RecommendationEngine, queries: np.ndarray, want: int) -> tuple[dict, dict]:
    """Latency of the engine's FAISS index searched directly, and through ``VectorIndex``."""
    import faiss

    raw = engine.index._index  # the FAISS object the wrapper searches (private: benchmark only)
    raw_s, wrapped_s = [], []
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # the engine searches single requests on one thread
    try:
        for q in queries[:50]:
            raw.search(q[None, :], want)
        for q in queries:
            t0 = time.perf_counter()
            raw.search(q[None, :], want)
            raw_s.append(time.perf_counter() - t0)
    finally:
        faiss.omp_set_num_threads(previous)
    for q in queries:
        t0 = time.perf_counter()
        engine.index.search(q[None, :], want)
        wrapped_s.append(time.perf_counter() - t0)
    return _percentiles(raw_s), _percentiles(wrapped_s)


def measure(n_items: int, dim: int, n_users: int, requests: int, neighbours: int, seed: int):
    """One row of the table: build, warm up, then time ``requests`` single requests."""
    started = time.perf_counter()
    bundle = synthetic_bundle(n_items, dim, n_users, neighbours, seed)
    built = time.perf_counter()
    engine = RecommendationEngine(bundle, model_version="synthetic", device="cpu")
    indexed = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    users = engine.user_ids[rng.integers(0, n_users, requests)]
    now = 1.7e9
    events = [_live_events(rng, engine, now) for _ in range(requests)]
    exact = n_items <= engine.exact_scoring_limit
    row = {"items": n_items, "dim": dim, "users": n_users, "requests": requests,
           "index": engine.index.kind, "exact_scoring": exact}  # fmt: skip
    row["engine"], row["answers_with_k_items"] = _time_engine(engine, users, events, now)
    if exact:  # the same catalogue through the ANN path as well
        engine = RecommendationEngine(bundle, model_version="synthetic", device="cpu",
                                      exact_scoring_limit=0)  # fmt: skip
        row["engine_ann_path"], _ = _time_engine(engine, users, events, now)
    want = engine.search_width(10)
    queries = np.stack(
        [engine.requests.prepare(engine.user_state(u, e, now)).query
         for u, e in zip(users, events, strict=True)]
    ).astype(np.float32)  # fmt: skip
    row["search_width"] = want
    row["faiss"], row["index_wrapper"] = _time_faiss(engine, queries, want)
    item_bytes = sum(bundle.arrays[name].nbytes for name in ITEM_ARRAYS)
    user_bytes = sum(a.nbytes for name, a in bundle.arrays.items() if name not in ITEM_ARRAYS)
    index_bytes = _index_bytes(engine.index._index, n_items, dim, engine.index.kind)
    per_million = 1e6 / n_items / 2**20
    row["mib_per_million_items"] = {
        "model_item_arrays": round(item_bytes * per_million, 1),
        "index": round(index_bytes * per_million, 1),
    }
    row["user_arrays_mib"] = round(user_bytes / 2**20, 1)
    row["build_seconds"] = {"bundle": round(built - started, 1),
                            "engine_and_index": round(indexed - built, 1)}  # fmt: skip
    return row


def _index_bytes(raw, n: int, dim: int, kind: str) -> int:
    """Memory of the FAISS index: serialised size (vectors + graph / lists + id map)."""
    import faiss

    try:
        return int(faiss.serialize_index(raw).nbytes)
    except Exception:  # noqa: BLE001 - fall back to the vectors alone
        return n * dim * 4 + (n * 8 if kind != "flat" else 0)


def _print_table(rows: list[dict]) -> None:
    head = (f"{'items':>9} {'index':>6} {'engine p50':>10} {'p99':>7} {'ANN-path p50':>12} "
            f"{'p99':>7} {'faiss p50':>9} {'p99':>7} {'wrapper p50':>11} {'p99':>7} "
            f"{'model MiB/M':>11} {'index MiB/M':>11}")  # fmt: skip
    print(head)
    for r in rows:
        mem = r["mib_per_million_items"]
        ann = r.get("engine_ann_path", r["engine"])
        label = r["index"] + ("*" if r["exact_scoring"] else "")
        print(
            f"{r['items']:>9,} {label:>6} {r['engine']['p50_ms']:>10.3f} "
            f"{r['engine']['p99_ms']:>7.3f} {ann['p50_ms']:>12.3f} {ann['p99_ms']:>7.3f} "
            f"{r['faiss']['p50_ms']:>9.3f} {r['faiss']['p99_ms']:>7.3f} "
            f"{r['index_wrapper']['p50_ms']:>11.3f} {r['index_wrapper']['p99_ms']:>7.3f} "
            f"{mem['model_item_arrays']:>11,.0f} {mem['index']:>11,.0f}"
        )
    print("ms per single request; engine = recommend(k=10) with in_stock + exclude_purchased + "
          "price 5-300 and 3 live events; * = few enough items that the engine scores every "
          "eligible item exactly (no ANN; 'ANN-path' forces the ANN path on the same catalogue); "
          "faiss = the engine's FAISS index searched directly for the same queries and width "
          "(search_width), one thread; wrapper = the same through VectorIndex.search. Memory in "
          "MiB per million items (item-side model arrays; the FAISS index).")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated items")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--neighbours", type=int, default=100, help="co-visitation list length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1000:
        parser.error("--sizes: each size must be at least 1000 items")
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    torch.manual_seed(args.seed)
    rows = []
    for n in sizes:
        row = measure(n, args.dim, args.users, args.requests, args.neighbours, args.seed)
        row["load_average"] = [round(v, 2) for v in os.getloadavg()]
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
