"""The two-tower training loop: index tensors on the device, randperm batches, fused losses."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recsys.data.interactions import Interactions
from recsys.models.features import FeatureCodes
from recsys.models.weighting import EventWeighting

try:  # the bare GPU benchmark machines may lack tqdm: train without a bar there
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover

    def tqdm(iterable, **_):
        return _Quiet(iterable)


class _Quiet(list):
    def set_postfix(self, **_) -> None:
        pass


logger = logging.getLogger(__name__)

LOSSES = ("softmax", "bpr")
INIT_STD = 0.05
CPU_SHUFFLE_LIMIT = 1 << 20


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of ``train_towers`` (see ``TwoTowerModel``)."""

    dim: int = 64
    epochs: int = 30
    batch_size: int | None = None
    lr: float = 0.01
    l2: float = 1e-4
    loss: str = "softmax"
    negatives: int = 1024
    context_weight: float = 1.0
    window: int = 10
    seed: int = 0
    progress: bool = False
    tf32: bool = True  # CUDA only: TensorFloat-32 matmuls while training

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"two-tower loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("dim", "epochs", "negatives", "window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"two-tower {name} must be positive, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(f"two-tower batch_size must be positive, got {self.batch_size}")
        if not self.lr > 0 or self.l2 < 0 or self.context_weight < 0:
            raise ValueError("two-tower lr must be > 0, l2 and context_weight >= 0")

    def resolved_batch(self, n_samples: int) -> int:
        """The batch size: as given, or at least 32 steps per epoch within [256, 65536]."""
        if self.batch_size is not None:
            return self.batch_size
        return int(min(max(n_samples // 32, 256), 65536))


@dataclass
class TrainResult:
    vectors: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # user, item, context
    feature_tables: dict[str, np.ndarray]
    samples: int
    final_loss: float
    loop_seconds: float  # the epoch loop alone (data preparation excluded)


class Towers(torch.nn.Module):
    """Embedding tables of the user, item and context towers plus side-feature tables."""

    def __init__(self, n_users, n_items, dim, user_cards, item_cards, seed) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)  # CPU init: identical on every device

        def table(rows):
            return torch.nn.Parameter(torch.randn(rows, dim, generator=gen) * INIT_STD)

        self.user = table(n_users)
        self.item = table(n_items)
        self.context = table(n_items)
        self.user_features = torch.nn.ParameterList([table(c) for c in user_cards])
        self.item_features = torch.nn.ParameterList([table(c) for c in item_cards])

    def users(self, index, codes):
        out = self.user[index]
        for f, emb in enumerate(self.user_features):
            out = out + emb[codes[index, f]]
        return out

    def items(self, index, codes):
        out = self.item[index]
        for f, emb in enumerate(self.item_features):
            out = out + emb[codes[index, f]]
        return out


def _chunk_losses(queries, keys, items, log_q):
    """Softmax losses of (towers, m, c, dim) queries against their chunk's (m, c, dim) keys."""
    n_towers, m, c, dim = queries.shape
    stacked = queries.permute(1, 0, 2, 3).reshape(m, n_towers * c, dim)
    # logits - log q in one batched GEMM (the bias rides in its epilogue)
    logits = torch.baddbmm(-log_q[items][:, None, :], stacked, keys.transpose(1, 2))
    eye = torch.eye(c, dtype=torch.bool, device=items.device)
    duplicate = (items[:, :, None] == items[:, None, :]) & ~eye  # same item, another sample
    logits = logits.view(m, n_towers, c, c).masked_fill_(duplicate[:, None], -torch.inf)
    target = torch.arange(c, device=items.device).repeat(m * n_towers)
    losses = F.cross_entropy(logits.reshape(-1, c), target, reduction="none")
    return losses.view(m, n_towers, c).permute(1, 0, 2).reshape(n_towers, m * c)


def _softmax_losses(queries, items, towers, icodes, log_q, chunk):
    """In-batch sampled softmax with logQ correction, per sample and query tower.

    The batch is cut into chunks of ``chunk`` samples (all chunks in one batched matmul); each
    query is contrasted with the items of its chunk, an item drawn ``c`` times counting ``c``
    times among the negatives (the estimate the logQ correction assumes) and the other samples
    of its own positive item masked out. ``queries`` is (n_towers, b, dim). Returns the losses
    (n_towers, b) and the mean squared norm of the samples' item vectors (for the L2 penalty).
    """
    n_towers, b, dim = queries.shape
    keys = towers.items(items, icodes)
    full = b // chunk * chunk
    parts = []
    if full:
        m = full // chunk
        parts.append(_chunk_losses(
            queries[:, :full].reshape(n_towers, m, chunk, dim),
            keys[:full].reshape(m, chunk, dim), items[:full].reshape(m, chunk), log_q,
        ))  # fmt: skip
    if full < b:
        rest = b - full
        parts.append(_chunk_losses(
            queries[:, full:].reshape(n_towers, 1, rest, dim),
            keys[full:].reshape(1, rest, dim), items[full:].reshape(1, rest), log_q,
        ))  # fmt: skip
    return torch.cat(parts, dim=1), keys.square().sum(-1).mean()


def _bpr_loss(query, positives, negatives_vec):
    return -F.logsigmoid((query * positives).sum(-1) - (query * negatives_vec).sum(-1))


@contextlib.contextmanager
def _matmul_precision(device: torch.device, tf32: bool):
    """TensorFloat-32 matmuls on CUDA while training (restored afterwards)."""
    if device.type != "cuda" or not tf32:
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def time_order(users: torch.Tensor, timestamps: torch.Tensor, items: torch.Tensor):
    """Permutation sorting events by (user, timestamp, item), like ``np.lexsort`` but with
    stable sorts on the tensors' device (50M events sort in milliseconds on a GPU)."""
    order = torch.sort(items, stable=True).indices
    order = order[torch.sort(timestamps[order], stable=True).indices]
    return order[torch.sort(users[order], stable=True).indices]


def train_towers(
    train: Interactions,
    weighting: EventWeighting,
    item_codes: FeatureCodes,
    user_codes: FeatureCodes,
    config: TrainConfig,
    device: torch.device,
) -> TrainResult:
    """Train the towers on ``train`` and return the exported vectors."""
    with _matmul_precision(device, config.tf32):
        return _train(train, weighting, item_codes, user_codes, config, device)


def _train(train, weighting, item_codes, user_codes, config, device) -> TrainResult:
    weights = weighting.type_weights(train.event_types)
    keep = weights > 0
    if not keep.any():
        raise ValueError("two-tower: every event has weight 0 under the event-type weights")
    users = torch.from_numpy(train.users[keep]).to(device)
    items = torch.from_numpy(train.items[keep]).to(device)
    sample_w = torch.from_numpy(weights[keep]).to(device, torch.float32)
    order = time_order(users, torch.from_numpy(train.timestamps[keep]).to(device), items)
    users, items, sample_w = users[order], items[order], sample_w[order]
    n, n_items = len(users), train.n_items
    counts = torch.bincount(users, minlength=train.n_users)
    user_start = (torch.cumsum(counts, 0) - counts)[users]
    positions = torch.arange(n, device=device)
    frequency = torch.bincount(items, minlength=n_items).to(torch.float32) + 1.0
    log_q = torch.log(frequency / frequency.sum())
    ucodes = torch.from_numpy(user_codes.codes).to(device)
    icodes = torch.from_numpy(item_codes.codes).to(device)

    towers = Towers(
        train.n_users, n_items, config.dim, user_codes.cardinalities, item_codes.cardinalities,
        config.seed,
    ).to(device)  # fmt: skip
    fused = device.type == "cuda"
    optimiser = torch.optim.Adam(towers.parameters(), lr=config.lr, fused=fused)
    # small data shuffles on the CPU generator: identical batches on every device (parity);
    # large data on the device's own generator (no host work per epoch)
    rng_device = torch.device("cpu") if n <= CPU_SHUFFLE_LIMIT else device
    gen = torch.Generator(device=rng_device).manual_seed(config.seed)
    batch = config.resolved_batch(n)
    chunk = min(config.negatives, batch)
    final_loss = float("nan")
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="two-tower", unit="epoch", disable=not config.progress)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen, device=rng_device).to(device)
        distance = torch.randint(1, config.window + 1, (n,), generator=gen, device=rng_device)
        distance = distance.to(device)
        context_pos = positions - distance
        has_context = context_pos >= user_start
        context_items = items[context_pos.clamp_min(0)]
        negatives = (
            torch.randint(0, n_items, (n,), generator=gen, device=rng_device).to(device)
            if config.loss == "bpr"
            else None
        )
        total, seen = torch.zeros((), device=device), 0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            u, it, w = users[idx], items[idx], sample_w[idx]
            uq = towers.users(u, ucodes)
            cq = towers.context[context_items[idx]]
            ctx_w = has_context[idx].to(torch.float32) * w
            if config.loss == "softmax":
                queries = torch.stack([uq, cq]) if config.context_weight else uq[None]
                losses, item_norm = _softmax_losses(queries, it, towers, icodes, log_q, chunk)
            else:
                iv = towers.items(it, icodes)
                nv = towers.items(negatives[idx], icodes)
                losses = torch.stack([_bpr_loss(uq, iv, nv), _bpr_loss(cq, iv, nv)])
                item_norm = (iv.square().sum(-1) + nv.square().sum(-1)).mean()
            loss = (losses[0] * w).sum() / w.sum().clamp_min(1e-12)
            if config.context_weight:
                ctx_total = (losses[1] * ctx_w).sum() / ctx_w.sum().clamp_min(1.0)
                loss = loss + config.context_weight * ctx_total
            reg = uq.square().sum(-1).mean() + cq.square().sum(-1).mean() + item_norm
            loss = loss + config.l2 * reg
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach() * len(idx)
            seen += len(idx)
        final_loss = float(total) / max(seen, 1)
        if not np.isfinite(final_loss):
            raise FloatingPointError(
                f"two-tower loss became {final_loss} in epoch {epoch + 1}; lower lr ({config.lr})"
            )
        bar.set_postfix(loss=f"{final_loss:.4f}")
        logger.debug("two-tower epoch %d loss %.5f", epoch + 1, final_loss)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    loop_seconds = time.perf_counter() - started
    with torch.no_grad():
        all_users = torch.arange(train.n_users, device=device)
        all_items = torch.arange(n_items, device=device)
        vectors = (
            towers.users(all_users, ucodes).detach().clone(),
            towers.items(all_items, icodes).detach().clone(),
            towers.context.detach().clone(),
        )
        tables = {
            f"item_feature_{f}": t.detach().cpu().numpy()
            for f, t in enumerate(towers.item_features)
        }
        tables["item_id_embedding"] = towers.item.detach().cpu().numpy()
    return TrainResult(vectors, tables, n * config.epochs, final_loss, loop_seconds)
