"""``gpu_check.py`` section ``parity``: the same small set trained on the CPU and on the GPU."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
from gpu_common import DIM, Deadline, K, Plan, progress
from gpu_training import synthetic_interactions, train

from recsys.index.topk import exact_topk
from recsys.index.torch_index import TorchIndex
from recsys.models.two_tower_train import TrainConfig


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
