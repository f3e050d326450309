"""k-means, silhouette and centroid matching in torch (GPU when the tensors are on one).

Torch and numpy only (scipy for the matching), so ``benchmarks/gpu_check.py`` runs it on a
machine without FAISS or pydantic. Assignment works in row chunks so 10M x 64 points fit:
``argmin ||c||^2 - 2 x.c`` per chunk, then the centroids are sums over ``index_add_``.
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK = 262_144  # rows per assignment step (chunk x k distances in memory)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row and its squared distance (chunked)."""
    labels = torch.empty(len(x), dtype=torch.int64, device=x.device)
    dists = torch.empty(len(x), dtype=x.dtype, device=x.device)
    c_norm = (centroids * centroids).sum(1)
    for lo in range(0, len(x), CHUNK):
        part = x[lo : lo + CHUNK]
        d = c_norm[None, :] - 2.0 * (part @ centroids.T)
        best, idx = d.min(dim=1)
        labels[lo : lo + CHUNK] = idx
        dists[lo : lo + CHUNK] = (best + (part * part).sum(1)).clamp_min(0)
    return labels, dists


def plus_plus(x: torch.Tensor, k: int, seed: int = 0, sample: int = 65_536) -> torch.Tensor:
    """k-means++ seeds drawn from a random sample of at most ``sample`` rows."""
    gen = _generator(seed, x.device)
    n = len(x)
    if n > sample:
        x = x[torch.randperm(n, generator=gen, device=x.device)[:sample]]
    first = int(torch.randint(len(x), (1,), generator=gen, device=x.device))
    centres = [x[first]]
    closest = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        weights = closest / closest.sum() if float(closest.sum()) > 0 else None
        if weights is None:
            pick = int(torch.randint(len(x), (1,), generator=gen, device=x.device))
        else:
            pick = int(torch.multinomial(weights, 1, generator=gen))
        centres.append(x[pick])
        closest = torch.minimum(closest, ((x - x[pick]) ** 2).sum(1))
    return torch.stack(centres)


def kmeans(
    x: torch.Tensor, k: int, iters: int = 20, seed: int = 0, init: torch.Tensor | None = None,
    tol: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, float]:  # fmt: skip
    """Lloyd's k-means.

    Parameters
    ----------
    x : torch.Tensor
        ``(n, d)`` float points (on the device the work should run on).
    k : int
        Number of clusters, ``1 <= k <= n``.
    iters : int
        Most iterations (stops early when the inertia improves by less than ``tol``).
    seed : int
    init : torch.Tensor, optional
        ``(k, d)`` starting centroids (default: k-means++ on a sample).

    Returns
    -------
    centroids : torch.Tensor
        ``(k, d)``.
    labels : torch.Tensor
        ``(n,)`` int64.
    inertia : float
        Sum of squared distances to the nearest centroid.
    """
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points ({n}), got {k}")
    centroids = (init if init is not None else plus_plus(x, k, seed)).to(x.device, x.dtype)
    gen = _generator(seed + 1, x.device)
    previous = float("inf")
    for _ in range(max(iters, 1)):
        labels, dists = assign(x, centroids)
        inertia = float(dists.sum())
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        empty = counts == 0
        centroids = sums / counts.clamp_min(1)[:, None]
        if bool(empty.any()):  # reseed empty clusters at random points
            fill = torch.randint(n, (int(empty.sum()),), generator=gen, device=x.device)
            centroids[empty] = x[fill]
        settled = previous < float("inf") and previous - inertia <= tol * previous
        if settled and not bool(empty.any()):
            break
        previous = inertia
    labels, dists = assign(x, centroids)
    return centroids, labels, float(dists.sum())


def silhouette(x: torch.Tensor, labels: torch.Tensor, sample: int = 4000, seed: int = 0) -> float:
    """Mean silhouette (Euclidean) of a random sample of at most ``sample`` points."""
    gen = _generator(seed, x.device)
    if len(x) > sample:
        keep = torch.randperm(len(x), generator=gen, device=x.device)[:sample]
        x, labels = x[keep], labels[keep]
    k = int(labels.max()) + 1
    dist = torch.cdist(x, x)
    onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
    sizes = onehot.sum(0)
    totals = dist @ onehot  # (n, k): summed distance to each cluster
    own = sizes[labels]
    a = totals.gather(1, labels[:, None]).squeeze(1) / (own - 1).clamp_min(1)
    means = totals / sizes.clamp_min(1)[None, :]
    means[torch.arange(len(x), device=x.device), labels] = float("inf")
    means[:, sizes == 0] = float("inf")
    b = means.min(dim=1).values
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    s[own <= 1] = 0.0
    return float(s.mean())


def match(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Hungarian matching of centroids: ``out[j]`` is the row of ``previous`` matched to row
    ``j`` of ``current`` (``-1`` when there are more current centroids than previous ones)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((previous[:, None, :] - current[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(current), -1, dtype=np.int64)
    out[cols] = rows
    return out
