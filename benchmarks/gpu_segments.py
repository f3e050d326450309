"""``gpu_check.py`` section ``segments``: the batch refresh's profile aggregation and k-means.

What ``recsys segments refresh`` computes per customer, at 10M users (full plan) on the device:

* **profile aggregation** (:func:`aggregate`): synthetic events (user, time, type, category,
  value) folded into the RFM inputs the store's ``customer_aggregates`` / ``user_profiles`` hold --
  last time of each event type (so recency = now - last purchase), first seen, purchase count
  (frequency), spend (monetary), purchases and spend per category -- then RFM scores 1-5 by rank
  quintiles among the customers with a purchase, as :func:`recsys.segments.rfm.rank_scores` does.
  The store's own aggregation (:mod:`recsys.store.profile_aggregates`) folds rows from SQL in
  Python, so the GPU path is this vectorised torch version of the same fold; the same function
  runs on the CPU for the comparison, and ``tests/benchmarks`` checks it against the library's
  ``fold`` and ``rank_scores``.
* **k-means** (:func:`recsys.segments.kmeans.kmeans`, the library's torch k-means the batch job
  runs on the user embeddings): 10M points x 64 dims, k = 256, exactly 20 Lloyd iterations
  (``tol=-inf`` so it never stops early), k-means++ seeding included.

The CPU path runs the same two functions on a subsample (``segment_cpu_users``, 1M in the full
plan); its time is also reported scaled linearly to the full size (labelled as an estimate).
Parity: the CPU subsample aggregated on both devices (exact integers, spend to 1e-9) and k-means
from the same seeds on both (label agreement, inertia). Goal: aggregation + k-means <= 2 s on one
GPU at full size.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from gpu_common import Deadline, Plan, free, progress, sync

from recsys.segments import kmeans as km

SEGMENTS_GOAL_S = 2.0  # aggregation + k-means, 10M users, on one GPU
EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase")  # codes 0..3
PURCHASE = EVENT_TYPES.index("purchase")
TYPE_SHARES = (0.72, 0.14, 0.03, 0.11)
DAY = 86400
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z, the reference time of recency
NEVER = -1  # "no such event" in the last-time columns


def synthetic_events(
    users: int, events: int, categories: int, device: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """``events`` events of ``users`` customers over the year before :data:`NOW` (activity skewed:
    a few customers do much more), types in :data:`TYPE_SHARES`, spend log-normal."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    u = torch.rand(events, generator=gen, device=device)
    user = (u * u * users).long().clamp_max(users - 1)  # more events for low ids
    cuts = torch.tensor(np.cumsum(TYPE_SHARES)[:-1], dtype=torch.float32, device=device)
    kind = torch.bucketize(torch.rand(events, generator=gen, device=device), cuts).to(torch.int8)
    offset = torch.randint(365 * DAY, (events,), generator=gen, device=device)
    category = torch.randint(categories, (events,), generator=gen, device=device).to(torch.int16)
    value = torch.exp(torch.randn(events, generator=gen, device=device) * 0.8 + 3.0)
    return {
        "user": user,
        "timestamp": NOW - offset,
        "kind": kind,
        "category": category,
        "value": value.float(),
    }


def rank_scores(values: torch.Tensor) -> torch.Tensor:
    """Scores 1-5 by quintile of ``values`` (higher is better), ties broken by position (stable
    sort): :func:`recsys.segments.rfm.rank_scores` in torch."""
    n = len(values)
    order = torch.sort(values, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(n, device=values.device)
    return 1 + (5 * ranks) // max(n, 1)


def aggregate(
    events: dict[str, torch.Tensor], users: int, categories: int, now: int = NOW
) -> dict[str, torch.Tensor]:
    """Per-customer RFM inputs of ``events`` and the RFM scores of the customers with a purchase.

    Returns
    -------
    dict
        ``last_event`` ``(users, types)`` unix seconds (:data:`NEVER` when none), ``first_seen``
        (``NEVER`` without events), ``frequency`` (purchases), ``monetary`` (float64 spend),
        ``recency_days`` (NaN without a purchase), ``category_purchases`` and ``category_spend``
        ``(users, categories)``, ``buyers`` (ids with a purchase, ascending) and ``rfm``
        ``(buyers, 3)`` scores.
    """
    user, ts, kind = events["user"], events["timestamp"], events["kind"].long()
    device, types = user.device, len(EVENT_TYPES)
    last = torch.full((users * types,), NEVER, dtype=torch.int64, device=device)
    last.scatter_reduce_(0, user * types + kind, ts, reduce="amax")
    last = last.view(users, types)
    first = torch.full((users,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    first.scatter_reduce_(0, user, ts, reduce="amin")
    first[first == torch.iinfo(torch.int64).max] = NEVER
    bought = kind == PURCHASE
    pu, pv = user[bought], events["value"][bought].double()
    pc = events["category"][bought].long()
    frequency = torch.bincount(pu, minlength=users)
    monetary = torch.zeros(users, dtype=torch.float64, device=device).index_add_(0, pu, pv)
    cell = pu * categories + pc
    per_category = torch.bincount(cell, minlength=users * categories).view(users, categories)
    spend = torch.zeros(users * categories, dtype=torch.float64, device=device)
    spend = spend.index_add_(0, cell, pv).view(users, categories)
    last_purchase = last[:, PURCHASE]
    recency = (now - last_purchase).double() / DAY
    recency[last_purchase == NEVER] = float("nan")
    buyers = torch.nonzero(frequency > 0).squeeze(1)
    rfm = torch.stack(
        [
            rank_scores(-recency[buyers]),
            rank_scores(frequency[buyers].double()),
            rank_scores(monetary[buyers]),
        ],
        dim=1,
    )
    return {
        "last_event": last,
        "first_seen": first,
        "frequency": frequency,
        "monetary": monetary,
        "recency_days": recency,
        "category_purchases": per_category,
        "category_spend": spend,
        "buyers": buyers,
        "rfm": rfm,
    }


def synthetic_points(n: int, dim: int, k: int, device: torch.device, seed: int = 0):
    """``n`` points around ``k`` planted centres (stand-ins for user embeddings)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    centres = torch.randn(k, dim, generator=gen, device=device) * 2.0
    planted = torch.randint(k, (n,), generator=gen, device=device)
    x = torch.randn(n, dim, generator=gen, device=device)
    x += centres[planted]
    return x


def run_kmeans(x: torch.Tensor, k: int, iters: int, seed: int = 0, init=None):
    """The library's k-means, made to run all ``iters`` iterations (no early stop)."""
    return km.kmeans(x, k, iters=iters, seed=seed, init=init, tol=float("-inf"))


def timed_run(device: torch.device, plan: Plan, users: int, seed: int) -> dict:
    """Generate (untimed), then time aggregation and k-means at ``users`` on ``device``."""
    n_events = users * plan.segment_events_per_user
    events = synthetic_events(users, n_events, plan.segment_categories, device, seed)
    x = synthetic_points(users, plan.segment_dim, plan.segment_k, device, seed)
    sync(device)
    started = time.perf_counter()
    agg = aggregate(events, users, plan.segment_categories)
    sync(device)
    aggregated = time.perf_counter()
    init = km.plus_plus(x, plan.segment_k, seed)  # what kmeans(init=None) does first
    sync(device)
    seeded = time.perf_counter()
    _, labels, inertia = run_kmeans(x, plan.segment_k, plan.segment_iters, seed, init)
    sync(device)
    done = time.perf_counter()
    return {
        "users": users,
        "events": n_events,
        "buyers": len(agg["buyers"]),
        "aggregate_seconds": round(aggregated - started, 4),
        "kmeans_seconds": round(done - aggregated, 4),  # k-means++ seeding included
        "kmeans_seeding_seconds": round(seeded - aggregated, 4),
        "total_seconds": round(done - started, 4),
        "kmeans_inertia_per_point": float(inertia) / users,
        "_data": (events, x, agg, init, labels, inertia),
    }


def iteration_breakdown(device: torch.device, x: torch.Tensor, k: int, seed: int = 0) -> dict:
    """Seconds of one Lloyd iteration's two halves on ``x`` (where the k-means time goes):
    ``assign`` (chunked distances + argmin) and ``update`` (``index_add_`` sums + counts)."""
    centroids = km.plus_plus(x, k, seed)
    sync(device)
    started = time.perf_counter()
    labels, _ = km.assign(x, centroids)
    sync(device)
    assigned = time.perf_counter()
    sums = torch.zeros_like(centroids).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k)
    sync(device)
    done = time.perf_counter()
    del sums, counts
    return {
        "assign_seconds": round(assigned - started, 4),
        "update_seconds": round(done - assigned, 4),
    }


def _public(run: dict) -> dict:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def parity(device: torch.device, plan: Plan, cpu_run: dict, seed: int) -> dict:
    """The CPU subsample on ``device``: aggregation equal, k-means from the same seeds close."""
    events, x, agg, init, labels, inertia = cpu_run["_data"]
    users = cpu_run["users"]
    moved = {name: t.to(device) for name, t in events.items()}
    other = {n: t.cpu() for n, t in aggregate(moved, users, plan.segment_categories).items()}
    exact = ("last_event", "first_seen", "frequency", "category_purchases", "buyers", "rfm")
    mismatched = [n for n in exact if not torch.equal(agg[n], other[n])]
    spend_diff = max(
        float((agg[n] - other[n]).abs().max()) if len(agg[n]) else 0.0
        for n in ("monetary", "category_spend")
    )
    _, labels_dev, inertia_dev = run_kmeans(
        x.to(device), plan.segment_k, plan.segment_iters, seed, init=init.to(device)
    )
    agreement = float((labels_dev.cpu() == labels).double().mean())
    relative = abs(inertia_dev - inertia) / max(abs(inertia), 1e-12)
    ok = not mismatched and spend_diff <= 1e-9 * max(1.0, float(agg["monetary"].max()))
    ok = ok and agreement >= 0.99 and relative <= 1e-3
    return {
        "users": users,
        "aggregate_mismatched_fields": mismatched,
        "aggregate_max_spend_diff": spend_diff,
        "kmeans_label_agreement": round(agreement, 6),
        "kmeans_inertia_relative_diff": relative,
        "parity_ok": ok,
    }


def segments_section(device: torch.device, plan: Plan, deadline: Deadline) -> dict:
    users, cpu_users = plan.segment_users, min(plan.segment_cpu_users, plan.segment_users)
    out = {
        "what": (
            "profile aggregation (last time per event type, first seen, frequency, monetary, "
            "per-category purchases and spend, RFM rank scores) + torch k-means "
            "(recsys.segments.kmeans, k-means++ seeding and exactly `iters` Lloyd iterations)"
        ),
        "users": users,
        "events": users * plan.segment_events_per_user,
        "dim": plan.segment_dim,
        "k": plan.segment_k,
        "iters": plan.segment_iters,
        "categories": plan.segment_categories,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }
    if deadline.left() < 30:
        out["skipped"] = "time budget"
        return out
    progress("segments: warm-up")
    warm = max(1000, min(users, 100_000))
    timed_run(device, replace(plan, segment_k=min(plan.segment_k, 32), segment_iters=2), warm, 9)
    free(device)

    progress(f"segments: {users:,} users on {device}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    main = timed_run(device, plan, users, seed=0)
    out["device_run"] = _public(main) | {"device": str(device)}
    out["device_run"]["one_iteration"] = iteration_breakdown(
        device, main["_data"][1], plan.segment_k
    )
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        out["device_run"]["peak_memory_gib"] = round(peak, 2)  # data generation included
    del main
    free(device)

    progress(f"segments: CPU path, {cpu_users:,} users")
    cpu_run = timed_run(torch.device("cpu"), plan, cpu_users, seed=1)
    scale = users / cpu_users
    out["cpu_run"] = _public(cpu_run) | {
        "device": "cpu",
        "subsample_of_full": round(1 / scale, 6),
        "total_seconds_scaled_to_full": round(cpu_run["total_seconds"] * scale, 3),
        "scaled_note": "estimate: the CPU subsample's time x (users / subsample users), linear",
    }
    device_total = out["device_run"]["total_seconds"]
    scaled = out["cpu_run"]["total_seconds_scaled_to_full"]
    out["speedup_vs_cpu_scaled"] = round(scaled / max(device_total, 1e-9), 2)

    progress("segments: parity on the CPU subsample")
    out["parity"] = parity(device, plan, cpu_run, seed=1)
    del cpu_run
    free(device)
    out["goal"] = {
        "seconds": SEGMENTS_GOAL_S,
        "device_total_seconds": device_total,
        "met": device.type == "cuda" and not plan.small and device_total <= SEGMENTS_GOAL_S,
        "note": "aggregation + k-means at the full size on one GPU; a CPU or --small run "
        "never counts as meeting it",
    }
    return out
