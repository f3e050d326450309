"""Event weighting: how much each event says about a user's current interest.

One function turns a user's events into a weighted history, at fit time (all users at once,
vectorised) and at serving time (one live session), so that an event just ingested moves the
user's representation exactly as the training-time histories were built:

    weight(item) = type_weight(strongest event on the item)
                   * exp(-position_from_end / position_tau)
                   * 0.5 ** (age_days / half_life_days)

``position_from_end`` counts the distinct later timestamps in the user's history (0 for the
most recent; items bought in one basket share a position), ``age_days`` is measured from ``now``
(by default the user's own latest event). Either decay is off when its parameter is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys.data.interactions import Interactions, SparseRows
from recsys.data.schemas import EVENT_TYPES
from recsys.models.checks import check_event_arrays, check_indices, event_type_positions

SECONDS_PER_DAY = 86_400.0

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "purchase": 1.0,
    "add_to_cart": 0.6,
    "wishlist": 0.4,
    "rate": 1.0,
    "click": 0.3,
    "view": 0.25,
    "interaction": 1.0,
    "remove_from_cart": 0.0,
    "open": 0.0,
}
"""Strength of each canonical event type (files with one type only use it as a constant)."""

assert set(DEFAULT_EVENT_WEIGHTS) == set(EVENT_TYPES), "every canonical event type needs a weight"


@dataclass(frozen=True)
class WeightedHistories:
    """Per-(user, item) weights: parallel arrays sorted by (user, item)."""

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray

    def matrix(self, n_users: int, n_items: int) -> SparseRows:
        """As a users x items CSR matrix."""
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=n_users), out=indptr[1:])
        return SparseRows(indptr, self.items, self.weights.astype(np.float32), (n_users, n_items))


@dataclass(frozen=True)
class EventWeighting:
    """Event-type weights and time decay, applied identically in training and serving.

    Parameters
    ----------
    event_weights : mapping of event type -> weight >= 0
        Overrides of ``DEFAULT_EVENT_WEIGHTS``; events whose weight is 0 are ignored.
    position_tau : float or None
        Decay by position from the end of the history, ``exp(-position / position_tau)``.
    half_life_days : float or None
        Decay by age, ``0.5 ** (age_days / half_life_days)``.
    max_items : int or None
        Keep only the most recent ``max_items`` distinct items of each history.
    """

    event_weights: Mapping[str, float] = field(default_factory=dict)
    position_tau: float | None = None
    half_life_days: float | None = None
    max_items: int | None = None

    def __post_init__(self) -> None:
        merged = dict(DEFAULT_EVENT_WEIGHTS)
        for name, value in dict(self.event_weights).items():
            if name not in DEFAULT_EVENT_WEIGHTS:
                raise ValueError(
                    f"event_weights: unknown event type {name!r}; "
                    f"expected one of {', '.join(EVENT_TYPES)}"
                )
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"event_weights[{name!r}] must be a finite number >= 0: {value}")
            merged[name] = float(value)
        object.__setattr__(self, "event_weights", merged)
        for name in ("position_tau", "half_life_days"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.max_items is not None and self.max_items <= 0:
            raise ValueError(f"max_items must be positive or None, got {self.max_items}")

    def replace(self, **changes) -> EventWeighting:
        """A copy with some parameters changed."""
        return EventWeighting(**(self.to_dict() | changes))

    def to_dict(self) -> dict:
        """JSON-ready parameters (the inverse of ``EventWeighting(**d)``)."""
        return {
            "event_weights": dict(self.event_weights),
            "position_tau": self.position_tau,
            "half_life_days": self.half_life_days,
            "max_items": self.max_items,
        }

    def type_weights(self, event_types) -> np.ndarray:
        """Weight of each event's type (float64); unknown types raise ``ValueError``."""
        values = np.asarray(list(self.event_weights.values()), dtype=np.float64)
        return values[event_type_positions(event_types, self.event_weights)]

    def weigh(self, users, items, timestamps=None, event_types=None, now=None) -> WeightedHistories:
        """Weighted histories of many users at once (vectorised).

        Parameters
        ----------
        users, items : int arrays, one entry per event.
        timestamps : float array (unix seconds) or None
            ``None`` means the events are in time order as given.
        event_types : str array or None (``None``: every event has weight 1 before decay).
        now : float or None
            Reference time of the age decay; ``None`` uses each user's latest event.

        Returns
        -------
        WeightedHistories
            One entry per (user, item) with a positive weight.
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        n = len(users)
        if len(items) != n:
            raise ValueError(f"users has {n} entries but items has {len(items)}")
        times = (
            np.arange(n, dtype=np.float64)
            if timestamps is None
            else np.asarray(timestamps, dtype=np.float64)
        )
        base = np.ones(n) if event_types is None else self.type_weights(event_types)
        check_event_arrays(n, times, base)
        keep = base > 0
        users, items, times, base = users[keep], items[keep], times[keep], base[keep]
        if len(users) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return WeightedHistories(empty, empty, np.zeros(0, dtype=np.float32))
        # one entry per (user, item): strongest type, latest time
        order = np.lexsort((times, items, users))
        users, items, times, base = users[order], items[order], times[order], base[order]
        start = np.ones(len(users), dtype=bool)
        start[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
        starts = np.flatnonzero(start)
        ends = np.append(starts[1:], len(users)) - 1
        base = np.maximum.reduceat(base, starts)
        users, items, times = users[starts], items[starts], times[ends]
        weights = base
        if self.position_tau is not None or self.max_items is not None:
            # newest first within each user; equal timestamps share a position
            by_recency = np.lexsort((-items, -times, users))
            u, t = users[by_recency], times[by_recency]
            new_user = np.ones(len(u), dtype=bool)
            new_user[1:] = u[1:] != u[:-1]
            new_time = new_user.copy()
            new_time[1:] |= t[1:] != t[:-1]
            group_start = np.maximum.accumulate(np.where(new_user, np.arange(len(u)), 0))
            steps = np.cumsum(new_time)
            position = np.empty(len(u), dtype=np.float64)
            position[by_recency] = steps - steps[group_start]
            rank = np.empty(len(u), dtype=np.int64)
            rank[by_recency] = np.arange(len(u)) - group_start
            if self.position_tau is not None:
                weights = weights * np.exp(-position / self.position_tau)
            if self.max_items is not None:
                weights = np.where(rank < self.max_items, weights, 0.0)
        if self.half_life_days is not None and timestamps is not None:
            if now is None:
                latest = np.full(users.max() + 1, -np.inf)
                np.maximum.at(latest, users, times)
                reference = latest[users]
            else:
                reference = np.full(len(users), float(now))
            age_days = np.maximum(reference - times, 0.0) / SECONDS_PER_DAY
            weights = weights * np.power(0.5, age_days / self.half_life_days)
        keep = weights > 0
        return WeightedHistories(users[keep], items[keep], weights[keep].astype(np.float32))

    def history(self, items, timestamps=None, event_types=None, now=None):
        """One user's weighted history (the serving-time call on a live session).

        Returns
        -------
        (items, weights) : int64 and float32 arrays, one entry per distinct item.
        """
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        result = self.weigh(
            np.zeros(len(items), dtype=np.int64), items, timestamps, event_types, now
        )
        return result.items, result.weights

    def matrix(self, train: Interactions, now=None) -> SparseRows:
        """Weighted users x items history matrix of ``train``."""
        weighted = self.weigh(train.users, train.items, train.timestamps, train.event_types, now)
        return weighted.matrix(train.n_users, train.n_items)


def dense_history(items, weights, n_items: int, device="cpu") -> torch.Tensor:
    """One weighted history as a dense (1, n_items) float32 tensor."""
    out = torch.zeros(1, n_items, dtype=torch.float32)
    items = torch.as_tensor(check_indices(items, n_items))
    out[0].index_put_((items,), torch.as_tensor(np.asarray(weights, np.float32)), accumulate=True)
    return out.to(device)


def normalise_rows(histories: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum 1 (all-zero rows stay zero), so scores are comparable across users."""
    total = histories.sum(dim=1, keepdim=True)
    return histories / torch.where(total > 0, total, torch.ones_like(total))
