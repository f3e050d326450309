"""``gpu_check.py`` section ``training``: two-tower epoch throughput beside a bare BPR loop."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from gpu_common import DIM, TRAIN_CONFIGS, Deadline, Plan, free, progress, sync

from recsys.data.interactions import Interactions
from recsys.models.features import FeatureCodes
from recsys.models.two_tower_train import TrainConfig, train_towers
from recsys.models.weighting import EventWeighting

TRAIN_BAR = 15e6  # samples/s of the two-tower model on an H100/H200
RESERVE_AFTER_TRAINING = 180  # seconds kept for parity, segments and top-k when a run starts


def zipf_draw(n: int, size: int, alpha: float, gen: torch.Generator, device) -> torch.Tensor:
    """``n`` draws from ``size`` ids with Zipf-Mandelbrot weights ``(rank + 10) ** -alpha``."""
    weights = (torch.arange(size, device=device, dtype=torch.float64) + 11.0) ** -alpha
    cdf = torch.cumsum(weights / weights.sum(), 0)
    relabel = torch.randperm(size, generator=gen, device=device)  # popular ids are not 0, 1, ...
    out = torch.empty(n, dtype=torch.int64, device=device)
    for start in range(0, n, 1 << 24):  # bounded temporaries
        stop = min(start + (1 << 24), n)
        u = torch.rand(stop - start, generator=gen, dtype=torch.float64, device=device)
        out[start:stop] = relabel[torch.searchsorted(cdf, u).clamp_max_(size - 1)]
    return out


def synthetic_interactions(users, items, events, device, seed: int) -> tuple[Interactions, dict]:
    """A synthetic interaction set generated on ``device`` (returned as host arrays)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    item_idx = zipf_draw(events, items, 1.0, gen, device)
    user_idx = zipf_draw(events, users, 0.6, gen, device)
    stamps = 1.7e9 + torch.rand(events, generator=gen, dtype=torch.float64, device=device) * 3e7
    counts = torch.bincount(item_idx, minlength=items).sort(descending=True).values
    stats = {
        "top_1pct_items_share": round(float(counts[: max(1, items // 100)].sum()) / events, 4),
        "items_with_events": int((counts > 0).sum()),
        "users_with_events": int((torch.bincount(user_idx, minlength=users) > 0).sum()),
    }
    data = Interactions(
        user_ids=np.arange(users).astype(str).astype(object),
        item_ids=np.arange(items).astype(str).astype(object),
        users=user_idx.cpu().numpy(),
        items=item_idx.cpu().numpy(),
        timestamps=stamps.cpu().numpy(),
        event_types=np.full(events, "interaction", dtype=object),
    )
    return data, stats


def subset(data: Interactions, n: int) -> Interactions:
    return replace(
        data,
        users=data.users[:n],
        items=data.items[:n],
        timestamps=data.timestamps[:n],
        event_types=data.event_types[:n],
    )


def no_features(n: int) -> FeatureCodes:
    return FeatureCodes(codes=np.zeros((n, 0), dtype=np.int64))


def train(data: Interactions, config: TrainConfig, device: torch.device):
    weighting = EventWeighting(position_tau=2.0)
    return train_towers(
        data, weighting, no_features(data.n_items), no_features(data.n_users), config, device
    )


def bpr_baseline(users, items, batch, samples, device, seed: int) -> dict:
    """A bare torch BPR loop on uniformly random ids: the reference throughput."""
    gen = torch.Generator(device=device).manual_seed(seed)
    user = torch.nn.Parameter(torch.randn(users, DIM, generator=gen, device=device) * 0.05)
    item = torch.nn.Parameter(torch.randn(items, DIM, generator=gen, device=device) * 0.05)
    optimiser = torch.optim.Adam([user, item], lr=0.01, fused=device.type == "cuda")

    def step():
        u, i, j = (
            torch.randint(0, n, (batch,), generator=gen, device=device)
            for n in (users, items, items)
        )
        loss = -F.logsigmoid((user[u] * (item[i] - item[j])).sum(-1)).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    for _ in range(5):
        step()
    steps = max(3, samples // batch)
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - started
    return {
        "batch": batch,
        "steps": steps,
        "seconds": round(seconds, 3),
        "samples_per_second": round(steps * batch / seconds),
    }


def training_section(device: torch.device, plan: Plan, deadline: Deadline) -> dict:
    started = time.perf_counter()
    progress(f"training: generating {plan.events:,} events on {device}")
    data, stats = synthetic_interactions(plan.users, plan.items, plan.events, device, seed=1)
    out = {
        "data": {
            "users": plan.users,
            "items": plan.items,
            "events": plan.events,
            **stats,
            "generate_seconds": round(time.perf_counter() - started, 2),
        },
        "bar_samples_per_second": TRAIN_BAR,
        "runs": [],
        "baseline_bpr": [],
    }
    batches = set()
    for name in plan.configs:
        if deadline.left() < RESERVE_AFTER_TRAINING:
            out["runs"].append({"name": name, "skipped": "time budget"})
            continue
        config = TrainConfig(epochs=1, seed=0, **TRAIN_CONFIGS[name])
        batch = min(config.resolved_batch(plan.events), plan.events)  # what a step really takes
        batches.add(batch)
        progress(f"training: {name} warm-up on {plan.warmup_events:,} events")
        train(subset(data, plan.warmup_events), config, device)
        free(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        progress(f"training: {name} ({config}) on {plan.events:,} events")
        call_started = time.perf_counter()
        result = train(data, config, device)
        row = {
            "name": name,
            "config": {k: v for k, v in vars(config).items() if k != "progress"},
            "batch_size": batch,
            "samples": result.samples,
            "loop_seconds": round(result.loop_seconds, 3),
            "call_seconds": round(time.perf_counter() - call_started, 2),
            "samples_per_second": round(result.samples / result.loop_seconds),
            "final_loss": result.final_loss,
        }
        if device.type == "cuda":
            row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            row["meets_bar"] = row["samples_per_second"] >= TRAIN_BAR
        progress(f"training: {name}: {row['samples_per_second']:,} samples/s")
        out["runs"].append(row)
        del result
        free(device)
    for batch in sorted(batches):
        if deadline.left() < RESERVE_AFTER_TRAINING - 30:
            break
        progress(f"training: bare-torch BPR baseline, batch {batch}")
        row = bpr_baseline(plan.users, plan.items, batch, plan.baseline_samples, device, seed=0)
        out["baseline_bpr"].append(row)
        free(device)
    done = [r for r in out["runs"] if "samples_per_second" in r]
    if done:
        best = max(done, key=lambda r: r["samples_per_second"])
        out["best"] = {"name": best["name"], "samples_per_second": best["samples_per_second"]}
        by_batch = {r["batch"]: r["samples_per_second"] for r in out["baseline_bpr"]}
        for r in done:
            if r["batch_size"] in by_batch:
                r["ratio_to_bpr_baseline"] = round(
                    r["samples_per_second"] / by_batch[r["batch_size"]], 3
                )
        out["meets_bar"] = (
            best["samples_per_second"] >= TRAIN_BAR if device.type == "cuda" else None
        )
    return out
