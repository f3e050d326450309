"""``gpu_check.py`` section ``topk``: exact top-k queries/s of our kernels and plain torch."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch
from gpu_common import DIM, Deadline, K, Plan, free, progress, sync

from recsys.index.topk import exact_topk, triton_available
from recsys.index.torch_index import TorchIndex

TOPK_GOAL = 1e6  # queries/s at 1M x 64 fp16, batch 1024


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
