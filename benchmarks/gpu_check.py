"""GPU check: device, two-tower training throughput, CPU/GPU parity and exact top-k speed.

Runs on the bare GPU benchmark machines: it needs torch, numpy and pandas only (no FAISS, Ray,
MLflow, FastAPI, pydantic or pyarrow; Triton is used when present). Progress goes to stderr and one
JSON summary to stdout (and to ``--out``). Every section is guarded: a failure is recorded under
``errors`` and the other sections still run; ``--budget-seconds`` skips what would overrun.

Sections:

1. ``device`` -- torch / CUDA / GPU name and memory, Triton, what ``recsys.device`` sees.
2. ``training`` -- a synthetic set (1M users, 200k items, 50M events, Zipf-like item popularity,
   generated on the device) trained for one epoch per configuration with the project's
   ``train_towers``; samples/s of its epoch loop (data preparation excluded, warmed up, CUDA
   synchronised) next to a bare-torch BPR loop on random ids (same batch, dim 64). Bar: 15M/s.
3. ``parity`` -- the same small set and seed trained on the CPU and on the GPU (no TF32): loss
   curves, embeddings, and top-10 of the same embeddings scored on both devices.
4. ``topk`` -- exact top-10 over 1M and 10M items x 64 (fp16, fp32) at batch 1 / 32 / 1024:
   queries/s of ``recsys.index.topk.exact_topk`` (what ``TorchIndex.search`` runs), its fused
   Triton variant (validated against an fp32 reference first), ``TorchIndex.search`` itself (1M)
   and the plain ``torch.topk(q @ items.T, 10)``. Goal: >= 1M queries/s at 1M x 64 fp16, batch 1024.

Examples::

    python benchmarks/gpu_check.py --out gpu_check.json    # GPU machine, about 3-4 minutes
    python benchmarks/gpu_check.py --small                 # CPU smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

if importlib.util.find_spec("recsys") is None:  # a bare checkout: run from the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from recsys.data.interactions import Interactions  # noqa: E402
from recsys.device import capabilities, resolve_device  # noqa: E402
from recsys.index.topk import exact_topk, triton_available  # noqa: E402
from recsys.index.torch_index import TorchIndex  # noqa: E402
from recsys.models.features import FeatureCodes  # noqa: E402
from recsys.models.two_tower_train import TrainConfig, train_towers  # noqa: E402
from recsys.models.weighting import EventWeighting  # noqa: E402

SECTIONS = ("device", "training", "parity", "topk")
TRAIN_BAR = 15e6  # samples/s of the two-tower model on an H100/H200
TOPK_GOAL = 1e6  # queries/s at 1M x 64 fp16, batch 1024
K, DIM = 10, 64
TRAIN_CONFIGS = {  # name -> TrainConfig overrides (one epoch each)
    "default": {},  # the project's defaults: softmax, 1024 negatives, context tower
    "fast": {"context_weight": 0.0, "negatives": 256, "batch_size": 262_144},
    "bpr": {"loss": "bpr", "context_weight": 0.0, "batch_size": 262_144},
}
RESERVE_AFTER_TRAINING = 150  # seconds kept for parity and top-k when training starts a run
_START = time.perf_counter()


@dataclass
class Plan:
    """Sizes of one run (full on the GPU, ``--small`` for a CPU smoke run)."""

    users: int = 1_000_000
    items: int = 200_000
    events: int = 50_000_000
    warmup_events: int = 2_000_000
    configs: tuple[str, ...] = tuple(TRAIN_CONFIGS)
    baseline_samples: int = 30_000_000
    parity: tuple[int, int, int, int] = (4000, 1500, 150_000, 3)  # users, items, events, epochs
    topk_sizes: tuple[int, ...] = (1_000_000, 10_000_000)
    batches: tuple[int, ...] = (1, 32, 1024)
    dtypes: tuple[str, ...] = ("fp16", "fp32")
    index_max_items: int = 1_000_000  # TorchIndex.search (string ids) up to this size
    min_time: float = 0.4  # seconds per timing


SMALL = Plan(
    users=2000,
    items=800,
    events=10_000,
    warmup_events=1000,
    baseline_samples=40_000,
    parity=(400, 200, 3000, 2),
    topk_sizes=(4000, 20_000),
    batches=(1, 16, 128),
    index_max_items=20_000,
    min_time=0.02,
)


def progress(message: str) -> None:
    print(
        f"[gpu_check {time.perf_counter() - _START:7.1f}s] {message}", file=sys.stderr, flush=True
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Deadline:
    """The run's time budget: sections skip work that would start after it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


# ------------------------------------------------------------------------------------ device
def device_section(device: torch.device, plan: Plan, deadline: Deadline) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": np.__version__,
        "triton": None,
        "device": str(device),
        "capabilities": capabilities().as_dict(),
    }
    if importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):
            import triton

            info["triton"] = triton.__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "cudnn": torch.backends.cudnn.version(),
        }
    return info


# ---------------------------------------------------------------------------------- training
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


# ----------------------------------------------------------------------------------- parity
class EpochLosses(logging.Handler):
    """Collects the per-epoch losses ``train_towers`` logs at DEBUG level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.losses: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        message, args = record.msg, record.args
        if isinstance(message, str) and message.startswith("two-tower epoch") and len(args) == 2:
            self.losses.append(float(args[1]))


@contextlib.contextmanager
def epoch_losses():
    log = logging.getLogger("recsys.models.two_tower_train")
    handler, level, propagate = EpochLosses(), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield handler.losses
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def top10_cpu(users: torch.Tensor, items: torch.Tensor):
    return torch.topk(users.cpu().float() @ items.cpu().float().T, K, dim=1)


def parity_section(device: torch.device, plan: Plan, deadline: Deadline) -> dict:
    users, items, events, epochs = plan.parity
    data, _ = synthetic_interactions(users, items, events, torch.device("cpu"), seed=2)
    config = TrainConfig(epochs=epochs, batch_size=2048, negatives=256, seed=3, tf32=False)
    runs = {}
    for where in ("cpu", str(device)) if device.type == "cuda" else ("cpu", "cpu (again)"):
        progress(f"parity: training {events:,} events x {epochs} epochs on {where}")
        with epoch_losses() as losses:
            result = train(data, config, torch.device(where.split(" ")[0]))
        runs[where] = (result, losses)
    (cpu, cpu_losses), (other, other_losses) = runs.values()
    out = {
        "devices": list(runs),
        "data": {"users": users, "items": items, "events": events, "epochs": epochs},
        "loss_curve": {"cpu": cpu_losses, "other": other_losses},
    }
    if device.type != "cuda":
        out["note"] = "no CUDA: the CPU is compared with itself (exercises the code path)"
    curves = zip(cpu_losses or [cpu.final_loss], other_losses or [other.final_loss], strict=True)
    rel = [abs(a - b) / max(abs(a), 1e-12) for a, b in curves]
    out["loss_max_rel_diff"] = max(rel)
    names = ("user", "item", "context")
    out["embedding_max_abs_diff"] = {
        n: float((a.cpu() - b.cpu()).abs().max())
        for n, a, b in zip(names, cpu.vectors, other.vectors, strict=True)
    }
    # the same (device-trained) embeddings scored on both devices: must give the same top-10
    u_vec, i_vec = other.vectors[0], other.vectors[1]
    ref = top10_cpu(u_vec, i_vec)
    on_device = exact_topk(u_vec.to(device), i_vec.to(device), K)
    index = TorchIndex(DIM, device=device).build(list(range(items)), i_vec.cpu().numpy())
    index_scores, index_ids = index.search(u_vec.cpu().numpy(), K)
    same_ids = (on_device[1].cpu() == ref.indices).all(dim=1)
    score_diff = (on_device[0].cpu() - ref.values).abs().max().item()
    out["scoring"] = {
        "rows_with_identical_top10": float(same_ids.float().mean()),
        "max_abs_score_diff": score_diff,
        "torch_index_identical_top10": float(
            (torch.from_numpy(index_ids.astype(np.int64)) == ref.indices).all(dim=1).float().mean()
        ),
        "torch_index_max_abs_score_diff": float(np.abs(index_scores - ref.values.numpy()).max()),
    }
    # the CPU-trained and device-trained models recommend (nearly) the same items
    a, b = top10_cpu(cpu.vectors[0], cpu.vectors[1]), ref
    pairs = zip(a.indices.tolist(), b.indices.tolist(), strict=True)
    overlap = [len(set(x) & set(y)) / K for x, y in pairs]
    out["trained_top10_overlap"] = float(np.mean(overlap))
    out["tolerances"] = {"loss_max_rel_diff": 1e-3, "score_abs": 1e-4, "trained_top10_overlap": 0.9}
    # differing ids are allowed only where scores tie within the tolerance
    out["parity_ok"] = bool(
        out["loss_max_rel_diff"] <= 1e-3
        and score_diff <= 1e-4
        and out["scoring"]["torch_index_max_abs_score_diff"] <= 1e-4
        and out["trained_top10_overlap"] >= 0.9
    )
    return out


# ------------------------------------------------------------------------------------- top-k
def timed(fn, device: torch.device, min_time: float) -> tuple[float, int]:
    """Seconds per call of ``fn`` (warmed up; calls queued back to back, then synchronised)."""
    fn()
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    once = time.perf_counter() - started
    reps = int(min(max(3, min_time / max(once, 1e-6)), 20_000))
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - started) / reps, reps


def baseline_topk(q: torch.Tensor, items: torch.Tensor, limit: int = 1 << 30):
    """The plain ``torch.topk(q @ items.T, k)`` (in query chunks when the scores would be huge)."""
    rows = max(1, limit // items.shape[0])
    if q.shape[0] <= rows:
        return torch.topk(q @ items.T, K, dim=1)
    parts = [torch.topk(part @ items.T, K, dim=1) for part in q.split(rows)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


def check(found, reference, tol: float) -> dict:
    """Score-set agreement with the fp32 reference (ties may pick other ids of equal score)."""
    values, ids = found[0].float().cpu(), found[1].cpu()
    diff = (values - reference.values).abs().max().item()
    pairs = zip(ids.tolist(), reference.indices.tolist(), strict=True)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in pairs])
    return {"max_abs_score_diff": diff, "id_recall": round(float(recall), 4), "ok": diff <= tol}


def topk_methods(device: torch.device, dtype: torch.dtype, items, n: int, plan: Plan):
    """name -> (search(q) -> (values, ids), note) for one item matrix."""
    methods = {
        "baseline_torch_topk": (lambda q: baseline_topk(q, items), None),
        "exact_topk": (lambda q: exact_topk(q, items, K), "TorchIndex's kernel"),
    }
    if device.type == "cpu":  # on CUDA "auto" already is the block selection
        methods["exact_topk_blocks"] = (lambda q: exact_topk(q, items, K, method="blocks"), None)
    if triton_available(device) and dtype != torch.float32:
        methods["exact_topk_triton"] = (lambda q: exact_topk(q, items, K, method="triton"), None)
    if n <= plan.index_max_items:
        precision = "fp16" if dtype == torch.float16 else "fp32"
        index = TorchIndex(DIM, device=device, precision=precision)
        index.build(list(range(n)), items.float().cpu().numpy())

        def search(q):
            scores, ids = index.search(q.float().cpu().numpy(), K)
            return torch.from_numpy(scores), torch.from_numpy(ids.astype(np.int64))

        methods["torch_index_search"] = (
            search,
            f"numpy in/out, ids; {index.describe()['params']['dtype']}",
        )
    return methods


def topk_section(device: torch.device, plan: Plan, deadline: Deadline) -> dict:
    torch.set_float32_matmul_precision("highest")  # fp32 means fp32 (no TF32)
    gen = torch.Generator(device=device).manual_seed(4)
    out = {"k": K, "dim": DIM, "results": [], "checks": [], "skipped": [], "failed": []}
    for n in plan.topk_sizes:
        for dtype_name in plan.dtypes:
            if deadline.left() < 20:
                out["skipped"].append({"items": n, "dtype": dtype_name, "why": "time budget"})
                continue
            dtype = torch.float16 if dtype_name == "fp16" else torch.float32
            items = torch.randn(n, DIM, generator=gen, device=device).to(dtype)
            probe = torch.randn(64, DIM, generator=gen, device=device).to(dtype)
            values, ids = baseline_topk(probe.float(), items.float())  # fp32 over the same data
            reference = SimpleNamespace(values=values.cpu(), indices=ids.cpu())
            scale = reference.values.abs().max().item()
            tol = scale * (2e-3 if dtype == torch.float16 else 1e-5)
            progress(f"topk: {n:,} items {dtype_name}")
            for name, (search, note) in topk_methods(device, dtype, items, n, plan).items():
                try:
                    result = check(search(probe), reference, tol)
                except Exception as exc:  # e.g. a Triton build problem: report, keep going
                    result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                out["checks"].append({"items": n, "dtype": dtype_name, "method": name, **result})
                if not result["ok"]:
                    progress(f"topk: {name} failed its check ({result}); not timed")
                    continue
                for batch in plan.batches:
                    if deadline.left() < 10:
                        out["skipped"].append(
                            {
                                "items": n,
                                "dtype": dtype_name,
                                "batch": batch,
                                "method": name,
                                "why": "time budget",
                            }
                        )
                        continue
                    row = {"items": n, "dtype": dtype_name, "batch": batch, "method": name}
                    q = torch.randn(batch, DIM, generator=gen, device=device).to(dtype)
                    try:
                        seconds, reps = timed(lambda q=q, s=search: s(q), device, plan.min_time)
                    except Exception as exc:  # e.g. out of memory: report, keep going
                        out["failed"].append({**row, "error": f"{type(exc).__name__}: {exc}"})
                        free(device)
                        continue
                    row |= {
                        "queries_per_second": round(batch / seconds),
                        "ms_per_batch": round(seconds * 1e3, 4),
                        "reps": reps,
                    }
                    out["results"].append(row | ({"note": note} if note else {}))
            del items
            free(device)
    out["all_checks_ok"] = all(c["ok"] for c in out["checks"])
    out["goal"] = topk_goal(out["results"], device, plan)
    return out


def topk_goal(results: list[dict], device: torch.device, plan: Plan) -> dict:
    n, batch = plan.topk_sizes[0], max(plan.batches)
    rows = [r for r in results if r["items"] == n and r["dtype"] == "fp16" and r["batch"] == batch]
    ours = [r for r in rows if r["method"] != "baseline_torch_topk"]
    base = [r["queries_per_second"] for r in rows if r["method"] == "baseline_torch_topk"]
    goal = {"items": n, "dtype": "fp16", "batch": batch, "target_queries_per_second": TOPK_GOAL}
    if ours:
        best = max(ours, key=lambda r: r["queries_per_second"])
        goal |= {
            "best_method": best["method"],
            "best_queries_per_second": best["queries_per_second"],
        }
        if base:
            goal["baseline_queries_per_second"] = base[0]
            goal["speedup_vs_baseline"] = round(best["queries_per_second"] / base[0], 2)
        goal["meets_goal"] = (
            best["queries_per_second"] >= TOPK_GOAL if device.type == "cuda" else None
        )
    return goal


# --------------------------------------------------------------------------------------- main
def json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(v) for v in text.split(","))
    except ValueError as exc:
        message = f"expected comma-separated positive integers: {exc}"
        raise argparse.ArgumentTypeError(message) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: a CPU smoke run")
    parser.add_argument("--out", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--device", default="auto", help="auto (default), cuda or cpu")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=330.0,
        help="skip work that would start after this many seconds (default 330)",
    )
    parser.add_argument("--train-configs", help=f"subset of {','.join(TRAIN_CONFIGS)}")
    parser.add_argument("--topk-sizes", type=positive_ints, help="catalogue sizes, e.g. 1000000")
    parser.add_argument("--batches", type=positive_ints, help="query batch sizes, e.g. 1,32,1024")
    parser.add_argument("--events", type=positive_int, help="training events (50M; small 10k)")
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; expected some of {SECTIONS}")
    if args.train_configs and set(args.train_configs.split(",")) - set(TRAIN_CONFIGS):
        parser.error(f"--train-configs: expected some of {list(TRAIN_CONFIGS)}")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = SMALL if args.small else Plan()
    if args.train_configs:
        plan = replace(plan, configs=tuple(args.train_configs.split(",")))
    if args.topk_sizes:
        plan = replace(plan, topk_sizes=args.topk_sizes)
    if args.batches:
        plan = replace(plan, batches=args.batches)
    if args.events:
        plan = replace(plan, events=args.events, warmup_events=min(plan.warmup_events, args.events))
    return plan


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    device = resolve_device(args.device)
    if device.type != "cuda" and not args.small:
        print(
            "gpu_check: full sizes need a CUDA GPU (torch sees none); use --small on the CPU",
            file=sys.stderr,
        )
        return 2
    plan, deadline = make_plan(args), Deadline(args.budget_seconds)
    summary = {
        "script": "benchmarks/gpu_check.py",
        "small": args.small,
        "plan": vars(plan),
        "errors": {},
    }
    runners = {
        "device": device_section,
        "training": training_section,
        "parity": parity_section,
        "topk": topk_section,
    }
    for name in args.sections.split(","):
        progress(f"section {name}")
        started = time.perf_counter()
        try:
            summary[name] = runners[name](device, plan, deadline)
        except Exception as exc:  # one failing section must not take the others down
            progress(f"section {name} failed: {type(exc).__name__}: {exc}")
            summary["errors"][name] = "".join(traceback.format_exception(exc)[-6:])
            free(device)
        summary.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 2)
    summary["seconds"] = round(time.perf_counter() - _START, 2)
    summary["ok"] = not summary["errors"]
    text = json.dumps(json_safe(summary), indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
