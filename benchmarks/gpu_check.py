"""GPU check: device, two-tower training, CPU/GPU parity, segments refresh and exact top-k speed.

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
4. ``segments`` -- what ``recsys segments refresh`` computes, at 10M users: profile aggregation
   of 200M synthetic events into the RFM inputs (last time per event type, frequency, monetary,
   per-category purchases and spend) and RFM rank scores, then the library's torch k-means
   (``recsys.segments.kmeans``) on 10M x 64 points, k = 256, exactly 20 iterations; the same
   functions on the CPU over a 1M-user subsample (time also scaled to 10M, an estimate) and a
   CPU/GPU parity check. Goal: aggregation + k-means <= 2 s on one GPU.
5. ``topk`` -- exact top-10 over 1M and 10M items x 64 (fp16, fp32) at batch 1 / 32 / 1024:
   queries/s of ``recsys.index.topk.exact_topk`` (what ``TorchIndex.search`` runs), its fused
   Triton variant (validated against an fp32 reference first), ``TorchIndex.search`` itself (1M)
   and the plain ``torch.topk(q @ items.T, 10)``. Goal: >= 1M queries/s at 1M x 64 fp16, batch 1024.

The sections live in ``gpu_training.py``, ``gpu_parity.py``, ``gpu_segments.py`` and
``gpu_topk.py`` next to this script (the plan and helpers they share in ``gpu_common.py``); this
file is the device section, the command line and the JSON summary.

Examples::

    python benchmarks/gpu_check.py --out gpu_check.json    # GPU machine, about 4 minutes
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
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("recsys") is None:  # a bare checkout: run from the repository
    sys.path.insert(0, str(HERE.parent))
if str(HERE) not in sys.path:  # the section modules next to this script
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_common import SMALL, START, TRAIN_CONFIGS, Deadline, Plan, free, progress  # noqa: E402
from gpu_parity import parity_section  # noqa: E402
from gpu_segments import segments_section  # noqa: E402
from gpu_topk import topk_section  # noqa: E402
from gpu_training import training_section  # noqa: E402

from recsys.device import capabilities, resolve_device  # noqa: E402

SECTIONS = ("device", "training", "parity", "segments", "topk")


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
        default=360.0,
        help="skip work that would start after this many seconds (default 360)",
    )
    parser.add_argument("--train-configs", help=f"subset of {','.join(TRAIN_CONFIGS)}")
    parser.add_argument("--topk-sizes", type=positive_ints, help="catalogue sizes, e.g. 1000000")
    parser.add_argument("--batches", type=positive_ints, help="query batch sizes, e.g. 1,32,1024")
    parser.add_argument("--events", type=positive_int, help="training events (50M; small 10k)")
    parser.add_argument(
        "--segment-users", type=positive_int, help="segments section users (10M; small 20k)"
    )
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
    if args.segment_users:
        plan = replace(plan, segment_users=args.segment_users)
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
        "segments": segments_section,
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
    summary["seconds"] = round(time.perf_counter() - START, 2)
    summary["ok"] = not summary["errors"]
    text = json.dumps(json_safe(summary), indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
