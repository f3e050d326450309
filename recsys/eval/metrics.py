"""Ranking metrics with binary gains, vectorised over a batch of users."""

from __future__ import annotations

import torch


def discounts(k: int, device=None) -> torch.Tensor:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=device))


def recall_ndcg_at_k(
    hits: torch.Tensor, n_relevant: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user Recall@k and NDCG@k.

    Parameters
    ----------
    hits : (n_users, >=k) bool/float tensor, hits[u, r] = the item ranked r+1 for u is relevant.
    n_relevant : (n_users,) number of relevant items per user (must be >= 1).
    k : cut-off.

    Notes
    -----
    Recall@k = hits / min(k, n_relevant); NDCG@k uses the ideal ranking of min(k, n_relevant)
    relevant items, as in the fixed protocol.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if hits.shape[1] < k:
        raise ValueError(f"hits has {hits.shape[1]} ranks, fewer than k={k}")
    h = hits[:, :k].to(torch.float64)
    denom = torch.clamp(n_relevant.to(torch.float64), max=k)
    if torch.any(denom < 1):
        raise ValueError("every evaluated user needs at least one relevant item")
    disc = discounts(k, device=h.device)
    dcg = (h * disc).sum(dim=1)
    ideal = torch.cumsum(disc, dim=0)[denom.long() - 1]
    return h.sum(dim=1) / denom, dcg / ideal
