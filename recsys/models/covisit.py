"""Item co-visitation / co-purchase: which items follow or accompany which, from event sequences.

Pairs come from each user's time-ordered events within ``window`` positions (``mode="sequence"``)
or from the same session / basket (``mode="session"``: ``session_id`` when the data has it, e.g.
Groceries baskets). Directional pairs count ``i -> j`` only when ``j`` comes after ``i`` (the
next-item signal); symmetric pairs count both ways (cross-sell). Each pair is weighted by the two
events' type weights and, in sequence mode, by ``1 / distance``. Every item keeps its top ``M``
neighbours as dense ``(n_items, M)`` index / value arrays, built with chunked torch operations
(no per-pair Python loops) in source-item blocks that bound memory on large catalogues.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from recsys.data.interactions import Interactions
from recsys.models.base import NotFittedError, Recommender
from recsys.models.checks import check_basket, check_indices, check_k
from recsys.models.weighting import EventWeighting, normalise_rows

logger = logging.getLogger(__name__)

MODES = ("auto", "sequence", "session")
NORMALISATIONS = ("row", "cosine", "none")


MISSING_SESSION = ("", "None", "nan", "<NA>")


def has_sessions(train: Interactions) -> bool:
    """Whether the interactions carry a session / basket id on at least one event."""
    if train.sessions is None or len(train.sessions) != len(train) or len(train) == 0:
        return False
    return not np.isin(np.asarray(train.sessions, dtype=object).astype(str), MISSING_SESSION).all()


def _group_codes(train: Interactions, mode: str) -> tuple[np.ndarray, str]:
    """Integer group per event: the user (sequence mode) or the session (session mode)."""
    sessions_present = has_sessions(train)
    if mode == "auto":
        mode = "session" if sessions_present else "sequence"
    if mode == "sequence":
        return train.users, mode
    if not sessions_present:
        raise ValueError("covisit mode='session' needs a session_id column in the interactions")
    sessions = np.asarray(train.sessions, dtype=object).astype(str)
    missing = np.isin(sessions, MISSING_SESSION)
    sessions = np.where(missing, np.char.add("user:", train.users.astype(str)), sessions)
    _, codes = np.unique(sessions, return_inverse=True)
    return codes.astype(np.int64), mode


def neighbour_scores(index: torch.Tensor, values: torch.Tensor, histories: torch.Tensor):
    """``sum_i h[i] * values[i, m]`` scattered onto ``index[i, m]``: (b, n_items) scores.

    ``index`` / ``values`` are the (n_items, M) neighbour arrays (-1 = no neighbour); only the
    non-zero history entries are touched, so this is cheap for short histories.
    """
    histories = histories.to(torch.float32)
    out = torch.zeros_like(histories)
    rows, cols = torch.nonzero(histories, as_tuple=True)
    if len(rows) == 0:
        return out
    idx = index[cols]
    vals = values[cols] * histories[rows, cols][:, None]
    valid = idx >= 0
    out.index_put_((rows[:, None].expand_as(idx)[valid], idx[valid]), vals[valid], accumulate=True)
    return out


class CoVisitationModel(Recommender):
    """Top-M item neighbours from co-occurring events.

    Parameters
    ----------
    mode : {"auto", "sequence", "session"}
        ``auto`` uses sessions when the interactions carry ``session_id``, else sequences.
    directional : bool
        Count ``i -> j`` only when ``j`` follows ``i`` (next-item); otherwise both ways.
    window : int
        Pair events at most this many positions apart (within a session in session mode).
    neighbours : int
        ``M``, neighbours kept per item.
    normalise : {"row", "cosine", "none"}
        ``row``: each item's weights sum to 1 (P(j | i)); ``cosine``: c_ij / sqrt(n_i n_j).
    weighting : EventWeighting or None
        Event-type weights of the pairs and the recency weighting of histories in ``score``.
    max_pairs : int
        Raw pairs held in memory at once; larger data is processed in source-item blocks.
    """

    name = "covisit"

    def __init__(
        self,
        mode: str = "sequence",
        directional: bool = True,
        window: int = 20,
        neighbours: int = 100,
        normalise: str = "row",
        weighting: EventWeighting | None = None,
        max_pairs: int = 20_000_000,
        device="auto",
    ) -> None:
        super().__init__(device)
        if mode not in MODES:
            raise ValueError(f"covisit mode must be one of {MODES}, got {mode!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(
                f"covisit normalise must be one of {NORMALISATIONS}, got {normalise!r}"
            )
        if window <= 0 or neighbours <= 0 or max_pairs <= 0:
            raise ValueError(
                f"covisit window, neighbours and max_pairs must be positive, "
                f"got {window}, {neighbours}, {max_pairs}"
            )
        self.mode = mode
        self.directional = bool(directional)
        self.window = int(window)
        self.n_neighbours = int(neighbours)
        self.normalise = normalise
        self.weighting = weighting or EventWeighting(position_tau=10.0)
        self.max_pairs = int(max_pairs)
        self.index: torch.Tensor | None = None  # (n_items, M) neighbour indices, -1 = none
        self.values: torch.Tensor | None = None  # (n_items, M) weights, 0 where index is -1

    def _fit(self, train: Interactions, items=None, users=None) -> None:
        groups, mode = _group_codes(train, self.mode)
        self.fitted_mode = mode
        type_w = self.weighting.type_weights(train.event_types)
        keep = type_w > 0
        order = np.lexsort((train.items[keep], train.timestamps[keep], groups[keep]))
        dev = self.device
        group = torch.from_numpy(groups[keep][order]).to(dev)
        seq = torch.from_numpy(train.items[keep][order]).to(dev)
        weight = torch.from_numpy(type_w[keep][order]).to(dev, torch.float32)
        times = torch.from_numpy(train.timestamps[keep][order]).to(dev, torch.float64)
        n = train.n_items
        frequency = torch.zeros(n, dtype=torch.float32, device=dev)
        frequency.index_add_(0, seq, weight)
        total_pairs = 0
        for d in range(1, min(self.window, len(seq) - 1) + 1):
            count = int((group[:-d] == group[d:]).sum())
            if count == 0:
                break
            total_pairs += count
        factor = 2  # symmetric pairs, or directional ones plus simultaneous (basket) reversals
        n_blocks = max(1, math.ceil(factor * total_pairs / self.max_pairs))
        logger.info(
            "covisit: %d events, %d pairs (%s, window %d), %d block(s)",
            len(seq), factor * total_pairs, mode, self.window, n_blocks,
        )  # fmt: skip
        m = min(self.n_neighbours, max(n - 1, 1))
        self.index = torch.full((n, m), -1, dtype=torch.int64, device=dev)
        self.values = torch.zeros((n, m), dtype=torch.float32, device=dev)
        for block in range(n_blocks):
            keys, sums = self._block_pairs(group, seq, times, weight, n, block, n_blocks, mode)
            self._keep_top(keys, sums, n, m, frequency)
        self._history = self.weighting.matrix(train)

    def _block_pairs(self, group, seq, times, weight, n, block, n_blocks, mode):
        """Summed weights of the distinct pairs whose source item falls in ``block``."""
        keys, sums = [], []
        for d in range(1, min(self.window, len(seq) - 1) + 1):
            same = group[:-d] == group[d:]
            if not bool(same.any()):
                break  # groups are contiguous: no pairs at distance d means none further
            same &= seq[:-d] != seq[d:]
            first, second = seq[:-d][same], seq[d:][same]
            w = weight[:-d][same] * weight[d:][same]
            if mode == "sequence":
                w = w / d
            if self.directional:  # events at the same time (one basket) have no direction
                both = times[:-d][same] == times[d:][same]
                pairs = [(first, second, w), (second[both], first[both], w[both])]
            else:
                pairs = [(first, second, w), (second, first, w)]
            for src, dst, pw in pairs:
                mask = (src % n_blocks) == block if n_blocks > 1 else None
                k = src * n + dst
                keys.append(k if mask is None else k[mask])
                sums.append(pw if mask is None else pw[mask])
            if len(keys) > 8:  # compact: bounded memory for long windows
                merged = self._reduce(torch.cat(keys), torch.cat(sums))
                keys, sums = [merged[0]], [merged[1]]
        if not keys:
            empty = torch.zeros(0, dtype=torch.int64, device=seq.device)
            return empty, empty.to(torch.float32)
        return self._reduce(torch.cat(keys), torch.cat(sums))

    @staticmethod
    def _reduce(keys: torch.Tensor, weights: torch.Tensor):
        unique, inverse = torch.unique(keys, return_inverse=True)
        out = torch.zeros(len(unique), dtype=torch.float32, device=keys.device)
        out.index_add_(0, inverse, weights)
        return unique, out

    def _keep_top(self, keys, sums, n, m, frequency) -> None:
        if len(keys) == 0:
            return
        src, dst = keys // n, keys % n
        if self.normalise == "row":
            row_total = torch.zeros(n, dtype=torch.float32, device=keys.device)
            row_total.index_add_(0, src, sums)
            sums = sums / row_total[src]
        elif self.normalise == "cosine":
            sums = sums / torch.sqrt(frequency[src] * frequency[dst]).clamp_min(1e-12)
        # sort by (src asc, weight desc, dst asc): deterministic top-M per source item
        order = torch.argsort(dst, stable=True)
        order = order[torch.argsort(-sums[order], stable=True)]
        order = order[torch.argsort(src[order], stable=True)]
        src, dst, sums = src[order], dst[order], sums[order]
        counts = torch.bincount(src, minlength=n)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(src), device=src.device) - starts[src]
        top = rank < m
        self.index[src[top], rank[top]] = dst[top]
        self.values[src[top], rank[top]] = sums[top]

    # ------------------------------------------------------------------ scoring
    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        """Sum of neighbour weights over the (weighted) history items: (b, n_items)."""
        return neighbour_scores(self.index, self.values, histories.to(self.device))

    def score_normalised(self, histories: torch.Tensor) -> torch.Tensor:
        """``score_histories`` of histories scaled to sum 1 per row."""
        return self.score_histories(normalise_rows(histories.to(self.device, torch.float32)))

    def neighbours(self, items, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of ``items``: (len(items), k) indices (-1 = none) and weights."""
        self._check_fitted()
        k = check_k(k)
        items = torch.as_tensor(check_indices(items, self.n_items), device=self.device)
        index, values = self.index[items][:, :k], self.values[items][:, :k]
        if index.shape[1] < k:
            pad = k - index.shape[1]
            index = torch.nn.functional.pad(index, (0, pad), value=-1)
            values = torch.nn.functional.pad(values, (0, pad), value=0.0)
        return index.cpu().numpy(), values.cpu().numpy()

    def score_basket(self, basket, weights=None) -> torch.Tensor:
        """Cross-sell scores (n_items,) for a basket; the basket's own items get ``-inf``."""
        self._check_fitted()
        basket = check_basket(basket, self.n_items)
        history = torch.zeros(1, self.n_items, device=self.device)
        w = torch.ones(len(basket)) if weights is None else torch.as_tensor(weights).float()
        history[0, torch.as_tensor(basket, device=self.device)] = w.to(self.device)
        scores = self.score_normalised(history)[0]
        scores[torch.as_tensor(basket, device=self.device)] = -torch.inf
        return scores

    def _check_fitted(self) -> None:
        if self.index is None:
            raise NotFittedError(f"{self.name} is not fitted; call fit() first")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Neighbour arrays for a serving bundle."""
        self._check_fitted()
        return {"index": self.index.cpu().numpy(), "values": self.values.cpu().numpy()}
