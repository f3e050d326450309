"""Shared pieces of ``gpu_check.py``: the run's plan, its clock and small device helpers."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

K, DIM = 10, 64
TRAIN_CONFIGS = {  # name -> TrainConfig overrides (one epoch each)
    "default": {},  # the project's defaults: softmax, 1024 negatives, context tower
    "fast": {"context_weight": 0.0, "negatives": 256, "batch_size": 262_144},
    "bpr": {"loss": "bpr", "context_weight": 0.0, "batch_size": 262_144},
}
START = time.perf_counter()


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
    segment_users: int = 10_000_000  # profile aggregation + k-means of the segments refresh
    segment_cpu_users: int = 1_000_000  # the CPU path's subsample (time also scaled to full)
    segment_events_per_user: int = 20
    segment_categories: int = 32
    segment_dim: int = 64
    segment_k: int = 256
    segment_iters: int = 20
    small: bool = False


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
    segment_users=20_000,
    segment_cpu_users=10_000,
    segment_k=32,
    small=True,
)


def progress(message: str) -> None:
    print(f"[gpu_check {time.perf_counter() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


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
