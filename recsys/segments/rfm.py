"""RFM: recency, frequency and monetary scores 1-5 by quintiles, and the 11 named groups.

The batch job scores every customer with a purchase by rank (ties broken by rank, so the five
quintiles are equal in size) and records the quintile edges; the real-time path scores a customer
whose purchases changed against those edges (:func:`score`). Recency counts as "higher is better"
on ``-days since the last purchase`` so one rule serves all three. The named group comes from the
R score and the mean of F and M on the usual 5x5 grid (:data:`GRID`); every scored customer is in
exactly one group.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from typing import Any

import numpy as np

from recsys.segments.definitions import RFM_GROUPS

_CHAMP, _LOYAL, _POTENTIAL, _RECENT, _PROMISING, _ATTENTION, _SLEEP, _RISK, _CANT, _HIB, _LOST = (
    RFM_GROUPS
)
GRID: dict[int, tuple[str, ...]] = {
    # R score -> group for FM = 1, 2, 3, 4, 5
    5: (_RECENT, _POTENTIAL, _POTENTIAL, _CHAMP, _CHAMP),
    4: (_PROMISING, _POTENTIAL, _POTENTIAL, _LOYAL, _CHAMP),
    3: (_SLEEP, _SLEEP, _ATTENTION, _LOYAL, _LOYAL),
    2: (_HIB, _HIB, _RISK, _RISK, _RISK),
    1: (_LOST, _LOST, _RISK, _CANT, _CANT),
}
"""The named group of each (R, FM) cell, FM = (F + M) / 2 rounded half up."""
STATE_NAME = "rfm_edges"
_DAY = 86400.0


def group_of(r: int | None, f: int | None, m: int | None) -> str | None:
    """The named group of the scores (``None`` when the customer has none)."""
    if r is None or f is None or m is None:
        return None
    return GRID[r][(f + m + 1) // 2 - 1]


def rank_scores(values: np.ndarray) -> np.ndarray:
    """Scores 1-5 by quintile of ``values`` (higher is better), ties broken by rank (stable
    order), so each score holds a fifth of the customers."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return (1 + (5 * ranks) // max(n, 1)).astype(np.int64)


def edges(values: np.ndarray, scores: np.ndarray) -> list[float]:
    """The lowest value of scores 2..5 (four edges; a score without customers repeats the
    previous edge)."""
    out: list[float] = []
    for k in range(2, 6):
        chosen = values[scores >= k]
        out.append(float(chosen.min()) if len(chosen) else (out[-1] if out else float("inf")))
    return out


def score(value: float, cut: list[float]) -> int:
    """Score 1-5 of ``value`` (higher is better) against the four edges ``cut``."""
    return 1 + bisect_right(cut, value)


def rfm_values(last_purchase_at: datetime, purchases: int, revenue: float, now: datetime):
    """``(-recency days, frequency, monetary)``: the three values scored (higher is better)."""
    return -(now - last_purchase_at).total_seconds() / _DAY, float(purchases), float(revenue)


def score_customer(
    last_purchase_at: datetime | None, purchases: int, revenue: float, cut: dict[str, Any] | None,
    now: datetime,
) -> tuple[int | None, int | None, int | None]:  # fmt: skip
    """R, F, M scores of one customer against the recorded edges (``None`` without a purchase
    or before the batch job recorded edges)."""
    if last_purchase_at is None or not cut:
        return None, None, None
    r, f, m = rfm_values(last_purchase_at, purchases, revenue, now)
    return score(r, cut["r"]), score(f, cut["f"]), score(m, cut["m"])


def batch_scores(
    last_purchase: np.ndarray, purchases: np.ndarray, revenue: np.ndarray, now: datetime
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rank scores ``(n, 3)`` of customers with a purchase and the edges for the real time path.

    Parameters
    ----------
    last_purchase : ndarray of float
        Unix seconds of each customer's last purchase.
    purchases, revenue : ndarray
        Purchase count and revenue of each customer.
    now : datetime
        The reference time of recency.
    """
    r = -(now.timestamp() - last_purchase.astype(np.float64)) / _DAY
    values = (r, purchases.astype(np.float64), revenue.astype(np.float64))
    scores = np.stack([rank_scores(v) for v in values], axis=1)
    cut = {
        name: edges(v, scores[:, k]) for k, (name, v) in enumerate(zip("rfm", values, strict=True))
    }
    cut["computed_at"] = now.isoformat()
    cut["customers"] = len(r)
    return scores, cut
