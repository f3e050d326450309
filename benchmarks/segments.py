"""Added time per ingested event for real-time segment membership (bar: p99 <= 1 ms).

Seeds a SQLite store (the embedded default) with customers and events, defines ``--segments``
active rule segments of every node kind, then ingests single-event batches through the one event
path (:class:`recsys.ingest.EventIngestor`) twice: without the segment subscriber (baseline) and
with it. Prints the per-event latency of both and the time the subscriber itself took (the
added time: evaluation, memberships, outbox and watermark in their own transaction), as JSON.

    .venv/bin/python benchmarks/segments.py --users 2000 --events 20000 --segments 50 --n 2000
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from recsys.ingest import EventIngestor
from recsys.segments.definitions import RFM_GROUPS
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService
from recsys.store import Store

TYPES = ["view", "view", "view", "add_to_cart", "remove_from_cart", "purchase"]


def definitions(n: int, categories: list[str]) -> list[dict]:
    """``n`` rule definitions cycling through every node kind."""
    day = 86400
    make = [
        lambda k: {"type": "performed", "event_type": "purchase",
                   "category": categories[k % len(categories)],
                   "count": {"op": "gte", "value": 2}, "window": {"seconds": 30 * day}},
        lambda k: {"type": "not_performed_since", "event_type": "purchase",
                   "since": "add_to_cart", "seconds": 3600 * (1 + k % 5)},
        lambda k: {"type": "attribute", "path": "revenue", "op": "gte", "value": 50.0 * k},
        lambda k: {"type": "and", "children": [
            {"type": "attribute", "path": "cart_value", "op": "gt", "value": 10},
            {"type": "random_bucket", "percent": 50, "salt": str(k)}]},
        lambda k: {"type": "rfm", "group": RFM_GROUPS[k % len(RFM_GROUPS)]},
        lambda k: {"type": "or", "children": [
            {"type": "performed", "event_type": "view", "count": {"op": "gte", "value": 5},
             "window": {"seconds": 7 * day}},
            {"type": "attribute", "path": "days_since_last_purchase", "op": "gt", "value": 30}]},
        lambda k: {"type": "not", "child": {"type": "attribute",
                   "path": f"category_purchases.{categories[k % len(categories)]}",
                   "op": "exists"}},
    ]  # fmt: skip
    return [make[k % len(make)](k) for k in range(n)]


def _events(rng, users, items, n, now):
    return [
        {
            "user_id": f"u{rng.randrange(users)}",
            "item_id": f"i{rng.randrange(items)}",
            "event_type": rng.choice(TYPES),
            "timestamp": (now - timedelta(seconds=rng.randrange(60 * 86400))).isoformat(),
            "value": round(rng.uniform(1, 80), 2),
        }
        for _ in range(n)
    ]


def _run(ingestor, records, now) -> np.ndarray:
    out = []
    for record in records:
        start = time.perf_counter()
        ingestor.ingest([record], now=now)
        out.append(time.perf_counter() - start)
    return np.array(out) * 1000


def _pcts(ms: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--n", type=int, default=2000, help="single-event batches per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", help="cProfile the subscriber's timed calls into this file")
    parser.add_argument("--top", type=int, default=30, help="profile lines printed")
    args = parser.parse_args()
    rng, now = random.Random(args.seed), datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        categories = [f"c{k}" for k in range(12)]
        store.items.upsert(
            [{"item_id": f"i{k}", "category": categories[k % 12]} for k in range(args.items)]
        )
        seed = _events(rng, args.users, args.items, args.events, now)
        for start in range(0, len(seed), 1000):
            store.events.append(seed[start : start + 1000])
        service = SegmentService(store)
        for k, node in enumerate(definitions(args.segments, categories)):
            service.create(f"bench {k}", node, segment_id=f"bench-{k}")
        refresh(store, engine=service.engine)  # RFM edges, built-in groups, memberships
        rule = sum(1 for s in store.segments.all() if s["active"])
        plain = EventIngestor(store)
        with_segments = EventIngestor(store)
        spent: list[float] = []
        cpu: list[float] = []
        kinds: list[str] = []
        profiler = cProfile.Profile() if args.profile else None

        def timed(rows):
            start, start_cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            service.engine.on_events(rows)
            if profiler is not None:
                profiler.disable()
            cpu.append((time.process_time() - start_cpu) * 1000)
            spent.append((time.perf_counter() - start) * 1000)
            kinds.append(rows[0]["event_type"])

        with_segments.subscribe("segments", timed)
        warm = _events(rng, args.users, args.items, 200, now)
        _run(plain, warm[:100], now)
        _run(with_segments, warm[100:], now)
        spent.clear()
        cpu.clear()
        kinds.clear()
        if profiler is not None:
            profiler = cProfile.Profile()
        base = _run(plain, _events(rng, args.users, args.items, args.n, now), now)
        full = _run(with_segments, _events(rng, args.users, args.items, args.n, now), now)
        added, kind = np.array(spent), np.array(kinds)
        by_type = {t: {"events": int((kind == t).sum()), **_pcts(added[kind == t])}
                   for t in sorted(set(kinds))}  # fmt: skip
        print(
            json.dumps(
                {
                    "store": "sqlite (WAL, synchronous=FULL)",
                    "customers": store.profiles.count(),
                    "events": store.events.count(),
                    "active_segments": rule,
                    "single_event_batches": args.n,
                    "ingest_ms_without_segments": _pcts(base),
                    "ingest_ms_with_segments": _pcts(full),
                    "added_ms_per_event": _pcts(added),
                    "added_cpu_ms_per_event": _pcts(np.array(cpu)),
                    "added_ms_by_event_type": by_type,
                    "load_average": list(os.getloadavg()),
                    "bar_p99_ms": 1.0,
                    "meets_bar": bool(np.percentile(added, 99) <= 1.0),
                },
                indent=2,
            )
        )
        store.close()
        if profiler is not None:
            profiler.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
