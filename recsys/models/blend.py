"""The served form of the default model: plain tensors plus a JSON config, no training code.

``BlendScorer`` answers everything the recommendation engine asks for:

- ``query_vectors`` / ``query_vector``: the ANN query of a user state (trained user vector blended
  with a recency-weighted mean of the recent items' context vectors);
- ``score_states`` (full catalogue) and ``score_candidates`` (the same scores on given items):
  ``sum_c weight_c * component_c / scale_c`` over the two-tower score, recency-weighted EASE,
  next-item co-visitation from recent items and a popularity prior;
- ``similar_items`` / ``cross_sell``: co-purchase statistics + embedding similarity + popularity
  (optionally a recency-weighted popularity: config ``cross_sell_prior.half_life_days``, computed
  from the stored histories, since what sold lately predicts the next basket better than what
  sold over the whole training period);
- ``to_arrays`` / ``from_arrays``: numpy arrays and a JSON-ready dict (no pickled classes).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recsys.data.interactions import SparseRows
from recsys.data.schemas import EVENT_TYPES
from recsys.device import resolve_device
from recsys.models.checks import (
    check_basket,
    check_indices,
    check_k,
    check_user,
    event_type_positions,
)
from recsys.models.covisit import neighbour_scores
from recsys.models.two_tower import build_queries
from recsys.models.weighting import EventWeighting, normalise_rows

logger = logging.getLogger(__name__)

COMPONENTS = ("twotower", "ease", "covisit", "pop")
FORMAT_VERSION = 1
REQUIRED_ARRAYS = (
    "user_vectors", "item_vectors", "context_vectors", "mean_user", "next_index", "next_values",
    "cross_index", "cross_values", "popularity", "history_indptr", "history_items",
    "history_timestamps", "history_event_codes",
)  # fmt: skip


def event_codes(event_types) -> np.ndarray:
    """Canonical event types as int8 codes (positions in ``EVENT_TYPES``)."""
    return event_type_positions(event_types, EVENT_TYPES).astype(np.int8)


@dataclass
class UserState:
    """What the engine knows about a user at request time.

    Attributes
    ----------
    user : index of a user known to the model, or None (cold user / anonymous session).
    items : item indices of the user's recent events (any order when timestamps are given).
    timestamps : unix seconds per event, or None (events are in time order, oldest first).
    event_types : canonical event type per event, or None (all weigh 1).
    now : request time (informational: the model normalises histories, so only the events'
        relative ages matter and they are measured from the latest event).
    """

    user: int | None = None
    items: Sequence[int] = ()
    timestamps: Sequence[float] | None = None
    event_types: Sequence[str] | None = None
    now: float | None = None


class BlendScorer:
    """Scores of the default model from exported arrays (see the module docstring)."""

    def __init__(self, arrays: dict, config: dict, device="auto") -> None:
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model config format_version {config.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; re-export the model with this version of recsys"
            )
        missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
        if missing:
            raise ValueError(f"model arrays are missing: {', '.join(missing)}")
        self.device = resolve_device(device)
        self.config = config
        dev = self.device

        def tensor(name, dtype=torch.float32):
            array = np.asarray(arrays[name])
            if not array.flags.writeable:  # memory-mapped bundle: shared, never written to
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    return torch.as_tensor(array).to(dev, dtype)
            return torch.as_tensor(array).to(dev, dtype)

        # copied: forget_user writes into it
        self.user_vectors = torch.tensor(np.array(arrays["user_vectors"]), device=dev)
        self.item_vectors = tensor("item_vectors")
        self.context_vectors = tensor("context_vectors")
        self.mean_user = tensor("mean_user")
        self.ease = tensor("ease_weights") if "ease_weights" in arrays else None
        self.next_index = tensor("next_index", torch.int64)
        self.next_values = tensor("next_values")
        self.cross_index = tensor("cross_index", torch.int64)
        self.cross_values = tensor("cross_values")
        self.popularity = tensor("popularity")
        top = torch.log1p(self.popularity.max()).clamp_min(1e-12)
        self.prior = torch.log1p(self.popularity) / top  # popularity prior in [0, 1]
        self.unit_items = F.normalize(self.item_vectors, dim=1)
        self.history = SparseRows(
            np.asarray(arrays["history_indptr"], np.int64),
            np.asarray(arrays["history_items"], np.int64),
            np.asarray(arrays["history_timestamps"], np.float64),
            (len(arrays["history_indptr"]) - 1, self.n_items),
        )
        self.history_types = np.asarray(EVENT_TYPES, dtype=object)[
            np.asarray(arrays["history_event_codes"], np.int64)
        ]
        self.item_ids = np.asarray(arrays["item_ids"]) if "item_ids" in arrays else None
        self.user_ids = np.asarray(arrays["user_ids"]) if "user_ids" in arrays else None
        self.query_weighting = EventWeighting(**config["query_weighting"])
        self.history_weighting = EventWeighting(**config["history_weighting"])
        self.user_weight = float(config["user_weight"])
        self.weights = {c: float(config["blend_weights"].get(c, 0.0)) for c in COMPONENTS}
        if self.ease is None:
            self.weights["ease"] = 0.0
        self.scales = {c: float(config["scales"].get(c, 1.0)) for c in COMPONENTS}
        self.cross_weights = dict(config["cross_sell_weights"])
        self.cross_prior = self._cross_prior(config.get("cross_sell_prior") or {})
        self._user_matrices: tuple[SparseRows, SparseRows] | None = None

    @property
    def n_items(self) -> int:
        return self.item_vectors.shape[0]

    @property
    def n_users(self) -> int:
        return self.user_vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.item_vectors.shape[1]

    def _cross_prior(self, settings: dict) -> torch.Tensor:
        """The cross-sell popularity prior in [0, 1]: ``prior``, or with ``half_life_days`` the
        stored events' type weights (one per user, item and time) decayed by age from the latest
        stored event, log-scaled."""
        unknown = set(settings) - {"half_life_days"}
        if unknown:
            raise ValueError(f"cross_sell_prior: unknown setting(s) {sorted(unknown)}")
        half_life = settings.get("half_life_days")
        if half_life is None:
            return self.prior
        if not np.isfinite(half_life) or half_life <= 0:
            raise ValueError(f"cross_sell_prior.half_life_days must be positive, got {half_life}")
        times = self.history.data
        if len(times) == 0:
            return self.prior
        users = np.repeat(np.arange(self.n_users), self.history.row_lengths())
        items = self.history.indices
        weights = self.history_weighting.type_weights(self.history_types)
        order = np.lexsort((-weights, times, items, users))  # repeats: keep the strongest type
        first = np.ones(len(order), dtype=bool)
        key = (users[order], items[order], times[order])
        first[1:] = np.any([k[1:] != k[:-1] for k in key], axis=0)
        keep = order[first]  # one count per (user, item, time), e.g. per basket
        decay = np.power(0.5, (times.max() - times[keep]) / 86_400.0 / half_life)
        counts = np.bincount(items[keep], weights=weights[keep] * decay, minlength=self.n_items)
        counts = torch.as_tensor(counts, dtype=torch.float32, device=self.device)
        return torch.log1p(counts) / torch.log1p(counts.max()).clamp_min(1e-12)

    # ------------------------------------------------------------------ histories
    def user_state(self, user: int) -> UserState:
        """The state of a known user from the history stored with the model."""
        user = check_user(user, self.n_users)
        lo, hi = self.history.indptr[user], self.history.indptr[user + 1]
        return UserState(
            int(user),
            self.history.indices[lo:hi],
            self.history.data[lo:hi],
            self.history_types[lo:hi],
        )

    def forget_user(self, user: int) -> int:
        """Erase a known user's trained vector and stored history (e.g. on an erasure request).

        Afterwards the user scores like an unknown user without events. Returns the number of
        stored events removed.
        """
        user = check_user(user, self.n_users)
        lo, hi = int(self.history.indptr[user]), int(self.history.indptr[user + 1])
        self.user_vectors[user] = 0.0
        if hi > lo:
            keep = np.r_[0:lo, hi : len(self.history.indices)]
            indptr = self.history.indptr.copy()
            indptr[user + 1 :] -= hi - lo
            self.history = SparseRows(
                indptr, self.history.indices[keep], self.history.data[keep], self.history.shape
            )
            self.history_types = self.history_types[keep]
            self._user_matrices = None
        return hi - lo

    def _stored_matrices(self) -> tuple[SparseRows, SparseRows]:
        if self._user_matrices is None:
            lengths = self.history.row_lengths()
            users = np.repeat(np.arange(self.n_users), lengths)
            args = (users, self.history.indices, self.history.data, self.history_types)
            self._user_matrices = tuple(
                w.weigh(*args).matrix(self.n_users, self.n_items)
                for w in (self.query_weighting, self.history_weighting)
            )
        return self._user_matrices

    def user_histories(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense (query, history) weighted histories of known users."""
        rows = torch.as_tensor(users).cpu().numpy()
        q, h = self._stored_matrices()
        return q.dense(rows, self.device), h.dense(rows, self.device)

    def state_histories(self, states: Sequence[UserState]):
        """(users, query histories, blend histories) tensors of a batch of states."""
        users = torch.tensor(
            [-1 if s.user is None else check_user(s.user, self.n_users) for s in states]
        )
        out = []
        for weighting in (self.query_weighting, self.history_weighting):
            dense = torch.zeros(len(states), self.n_items)
            for row, s in enumerate(states):
                # ages from the state's latest event: histories are normalised, so only relative
                # ages matter, and a long-absent user's weights cannot underflow to zero
                items, weights = weighting.history(s.items, s.timestamps, s.event_types)
                check_indices(items, self.n_items)
                dense[row, torch.from_numpy(items)] = torch.from_numpy(weights)
            out.append(dense.to(self.device))
        return users, out[0], out[1]

    # ------------------------------------------------------------------ scoring
    def queries(self, users: torch.Tensor, query_histories: torch.Tensor) -> torch.Tensor:
        return build_queries(
            self.user_vectors, self.context_vectors, self.mean_user, users, query_histories,
            self.user_weight,
        )  # fmt: skip

    def components(self, users, query_histories, histories, candidates=None, every=False) -> dict:
        """Raw component scores (b, n_items), or (b, len(candidates)) on ``candidates``.

        Components with blend weight 0 are skipped unless ``every``.
        """
        cand = None if candidates is None else torch.as_tensor(candidates, device=self.device)
        query = self.queries(users, query_histories)
        items = self.item_vectors if cand is None else self.item_vectors[cand]
        out = {"twotower": query @ items.T}
        normalised = normalise_rows(histories.to(self.device, torch.float32))
        if self.ease is not None and (every or self.weights["ease"]):
            out["ease"] = normalised @ (self.ease if cand is None else self.ease[:, cand])
        if every or self.weights["covisit"]:
            full = neighbour_scores(self.next_index, self.next_values, normalised)
            out["covisit"] = full if cand is None else full[:, cand]
        prior = self.prior if cand is None else self.prior[cand]
        out["pop"] = prior[None, :].expand(len(normalised), -1)
        return out

    def blend(self, components: dict) -> torch.Tensor:
        total = None
        for name, value in components.items():
            weight = self.weights.get(name, 0.0)
            if weight:
                term = (weight / self.scales[name]) * value
                total = term if total is None else total + term
        if total is None:
            return torch.zeros_like(components["twotower"])
        return total

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Full-catalogue scores (b, n_items) of known users from their stored histories."""
        hq, hh = self.user_histories(users)
        return self.blend(self.components(users, hq, hh))

    def retrieval_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Retrieval path alone: inner products of the users' queries with the item vectors."""
        hq, _ = self.user_histories(users)
        return self.queries(users, hq) @ self.item_vectors.T

    def score_states(self, states: Sequence[UserState]) -> torch.Tensor:
        """Full-catalogue scores (b, n_items) of request-time states."""
        users, hq, hh = self.state_histories(states)
        return self.blend(self.components(users, hq, hh))

    def score_candidates(self, state: UserState, candidates) -> np.ndarray:
        """Scores of ``candidates`` (item indices): ``score_states([state])[0, candidates]``."""
        candidates = check_indices(candidates, self.n_items, "candidate item indices")
        users, hq, hh = self.state_histories([state])
        return self.blend(self.components(users, hq, hh, candidates))[0].cpu().numpy()

    def query_vector(self, state: UserState) -> np.ndarray:
        """The (dim,) float32 ANN query of one state (inner product with ``item_vectors``)."""
        users, hq, _ = self.state_histories([state])
        return self.queries(users, hq)[0].cpu().numpy()

    # ------------------------------------------------------------------ item to item
    def cross_sell_components(self, baskets: torch.Tensor) -> dict:
        """Co-purchase, embedding-similarity and popularity scores (b, n_items) of baskets.

        ``baskets`` is a dense (b, n_items) matrix with the basket items' weights summing to 1.
        """
        baskets = baskets.to(self.device, torch.float32)
        centre = F.normalize(baskets @ self.unit_items, dim=1)
        return {
            "covisit": neighbour_scores(self.cross_index, self.cross_values, baskets),
            "embedding": centre @ self.unit_items.T,
            "pop": self.cross_prior[None, :].expand(len(baskets), -1),
        }

    def cross_sell_scores(self, basket) -> torch.Tensor:
        """(n_items,) co-purchase + embedding similarity + popularity; basket items ``-inf``."""
        basket = check_basket(basket, self.n_items)
        index = torch.as_tensor(basket, device=self.device)
        onehot = torch.zeros(1, self.n_items, device=self.device)
        onehot[0, index] = 1.0 / len(basket)
        parts = self.cross_sell_components(onehot)
        scores = sum(self.cross_weights[name] * value[0] for name, value in parts.items())
        scores[index] = -torch.inf
        return scores

    def cross_sell(self, basket, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (items, scores) to add to ``basket`` (never a basket item)."""
        return self._top(self.cross_sell_scores(basket), k)

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (items, scores) similar to ``item`` (never the item itself)."""
        return self._top(self.cross_sell_scores([item]), k)

    @staticmethod
    def _top(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = check_k(k)
        finite = int(torch.isfinite(scores).sum())
        values, index = torch.topk(scores, min(k, finite))
        return index.cpu().numpy(), values.cpu().numpy()

    # ------------------------------------------------------------------ export
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, config): plain numpy arrays and a JSON-ready dict; see ``from_arrays``."""
        arrays = {
            "user_vectors": self.user_vectors, "item_vectors": self.item_vectors,
            "context_vectors": self.context_vectors, "mean_user": self.mean_user,
            "next_index": self.next_index, "next_values": self.next_values,
            "cross_index": self.cross_index, "cross_values": self.cross_values,
            "popularity": self.popularity,
        }  # fmt: skip
        if self.ease is not None:
            arrays["ease_weights"] = self.ease
        arrays = {name: value.cpu().numpy() for name, value in arrays.items()}
        arrays |= {
            "history_indptr": self.history.indptr,
            "history_items": self.history.indices,
            "history_timestamps": self.history.data,
            "history_event_codes": event_codes(self.history_types),
        }
        if self.item_ids is not None:
            arrays["item_ids"] = self.item_ids
        if self.user_ids is not None:
            arrays["user_ids"] = self.user_ids
        return arrays, dict(self.config)

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict, device="auto") -> BlendScorer:
        """Rebuild from ``to_arrays`` output (e.g. loaded from ``.npy`` files and JSON)."""
        return cls(arrays, config, device)
