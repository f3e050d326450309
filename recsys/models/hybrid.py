"""The default served model: a blend of two-tower, recency-weighted EASE, co-visitation and
popularity, whose blend weights and recency parameters are chosen at fit time on a validation
split carved from the training data (``recsys.models.tuning``), then refitted on all of it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from recsys.data.interactions import Interactions
from recsys.models.base import NotFittedError, Recommender
from recsys.models.blend import FORMAT_VERSION, BlendScorer, UserState, event_codes
from recsys.models.complement_scorer import ComplementScorer
from recsys.models.complements import ComplementModel, item_categories
from recsys.models.covisit import CoVisitationModel
from recsys.models.ease import EASEModel
from recsys.models.hybrid_search import search_parameters
from recsys.models.two_tower import TwoTowerModel
from recsys.models.weighting import EventWeighting

logger = logging.getLogger(__name__)

DEFAULT_PARAMS = {
    "user_weight": 0.5,  # trained user vector vs recency-weighted session mean in the query
    "query_tau": 2.0,  # position decay of the query's session part
    "history_tau": 8.0,  # position decay of the histories fed to EASE and co-visitation
    "half_life_days": None,  # age decay of both (None: off)
    "w_twotower": 1.0,
    "w_ease": 1.0,
    "w_covisit": 1.0,
    "w_pop": 0.0,
    "cross_covisit": 1.0,  # cross-sell / similar items: co-purchase weight
    "cross_embedding": 0.25,  # ... item-vector cosine similarity
    "cross_pop": 0.1,  # ... popularity prior
    "cross_half_life_days": None,  # ... recency weighting of that prior (None: all time)
}
SCALE_USERS = 1000


class HybridModel(Recommender):
    """The default model (``name = "default"``).

    Parameters
    ----------
    dim, epochs, two_tower : embedding size, epochs and further ``TwoTowerModel`` arguments.
    ease_l2 : float
        EASE ridge.
    ease_max_items : int
        EASE is part of the blend only up to this many items (its cost grows with items³).
    covisit_window, covisit_neighbours : co-visitation pair window and neighbours per item.
    complements : dict or None
        ``recsys.models.complements.DEFAULT_COMPLEMENT_PARAMS`` overrides (cross-sell).
    max_history : int
        Most recent events kept per user (stored with the model; older ones do not count).
    event_weights : mapping or None
        Overrides of the default event-type weights.
    params : dict or None
        Fixed values of ``DEFAULT_PARAMS`` entries; with ``tune=True`` they are start values.
    tune : bool
        Choose the parameters on a validation split of the training data (never the test split).
    validation_users : int
        Validation users sampled for the search.
    """

    name = "default"

    def __init__(
        self,
        dim: int = 64,
        epochs: int = 15,
        two_tower: dict | None = None,
        ease_l2: float = 200.0,
        ease_max_items: int = 20_000,
        covisit_window: int = 20,
        covisit_neighbours: int = 100,
        complements: dict | None = None,
        max_history: int = 200,
        event_weights: dict | None = None,
        params: dict | None = None,
        tune: bool = True,
        validation_users: int = 3000,
        seed: int = 0,
        progress: bool = False,
        device="auto",
    ) -> None:
        super().__init__(device)
        unknown = set(params or {}) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"unknown default-model params {sorted(unknown)}; "
                             f"expected some of {sorted(DEFAULT_PARAMS)}")  # fmt: skip
        clash = set(two_tower or {}) & {"dim", "epochs", "weighting", "seed", "progress", "device"}
        if clash:
            raise ValueError(f"two_tower must not set {sorted(clash)}; they are HybridModel "
                             "arguments of their own")  # fmt: skip
        if max_history <= 0:
            raise ValueError(f"max_history must be positive, got {max_history}")
        self.dim, self.epochs = int(dim), int(epochs)
        self.two_tower = dict(two_tower or {})
        self.ease_l2, self.ease_max_items = float(ease_l2), int(ease_max_items)
        self.covisit_window, self.covisit_neighbours = int(covisit_window), int(covisit_neighbours)
        self.max_history = int(max_history)
        self.complement_params = ComplementModel(complements).params  # checked here
        self.complements: dict[str, np.ndarray] = {}
        self.item_tower: dict = {}  # content-feature tables: vectors of items added after training
        self._intents: ComplementScorer | None = None
        self._events = None  # the raw events of the fit in progress (complements)
        self.event_weights = EventWeighting(event_weights or {}).event_weights
        self.params = DEFAULT_PARAMS | dict(params or {})
        self.tune, self.validation_users = bool(tune), int(validation_users)
        self.seed, self.progress = int(seed), bool(progress)
        self.scorer: BlendScorer | None = None
        self.report: dict = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, train: Interactions, items=None, users=None, events=None) -> HybridModel:
        """Fit on ``train``; ``events`` (optional) are its raw events, one row per event, which
        the complement statistics learn re-buying from (``train`` may hold one row per pair)."""
        self._events = events
        try:
            return super().fit(train, items=items, users=users)
        finally:
            self._events = None  # not kept with the fitted model

    def _fit(self, train: Interactions, items=None, users=None) -> None:
        weights = EventWeighting(self.event_weights).type_weights(train.event_types)
        if not (weights > 0).any():
            zero = sorted(set(np.asarray(train.event_types, dtype=object).tolist()))
            raise ValueError(
                f"default model: all {len(train)} events have event types of weight 0 "
                f"({', '.join(map(str, zero))}); give them a positive weight in event_weights"
            )
        params, search = dict(self.params), {}
        if self.tune:
            started = time.perf_counter()
            params, self.complement_params, search = search_parameters(
                self, train, items, users, params, self._events
            )
            search["seconds"] = round(time.perf_counter() - started, 3)
        self.scorer = self.build(train, items, users, params, self._events)
        self.report = {"params": params, "complements": dict(self.complement_params),
                       "search": search, "two_tower": self._tt_stats}  # fmt: skip

    def build(self, train: Interactions, items, users, params: dict, events=None) -> BlendScorer:
        """Fit every component on ``train`` (complements on ``events`` when given) and assemble
        the scorer with ``params``."""
        base = EventWeighting(self.event_weights)
        tt = TwoTowerModel(
            dim=self.dim, epochs=self.epochs, weighting=base, seed=self.seed,
            progress=self.progress, device=self.device, **self.two_tower,
        ).fit(train, items=items, users=users)  # fmt: skip
        self._tt_stats = tt.training_stats
        self.item_tower = {"config": tt.item_feature_config} | {
            f"tower_{k}": v for k, v in tt.feature_tables.items() if k.startswith("item_feature_")
        }
        arrays = tt.to_arrays()
        arrays["mean_user"] = arrays["user_vectors"].mean(axis=0)
        if train.n_items <= self.ease_max_items:
            ease = EASEModel(l2=self.ease_l2, max_items=self.ease_max_items, device=self.device)
            arrays["ease_weights"] = ease.fit(train).B.cpu().numpy()
        else:
            logger.info("EASE skipped: %d items > ease_max_items=%d", train.n_items,
                        self.ease_max_items)  # fmt: skip
        common = dict(window=self.covisit_window, neighbours=self.covisit_neighbours,
                      weighting=base, device=self.device)  # fmt: skip
        nxt = CoVisitationModel(mode="sequence", directional=True, **common).fit(train)
        cross = CoVisitationModel(mode="auto", directional=False, **common).fit(train)
        arrays |= {f"next_{k}": v for k, v in nxt.to_arrays().items()}
        arrays |= {f"cross_{k}": v for k, v in cross.to_arrays().items()}
        arrays["popularity"] = train.item_counts().astype(np.float32)
        codes, names = item_categories(items, train.item_ids)
        complements = ComplementModel(
            self.complement_params, neighbours=self.covisit_neighbours, weighting=base
        )
        self.complements = complements.fit(train, codes, names, events).arrays  # to_arrays
        self._intents = None
        arrays |= self._history_arrays(train)
        arrays["item_ids"] = np.asarray(train.item_ids).astype(str)
        arrays["user_ids"] = np.asarray(train.user_ids).astype(str)
        scorer = BlendScorer(arrays, self.scorer_config(params), device=self.device)
        set_scales(scorer, sample_users(scorer, SCALE_USERS, self.seed))
        return scorer

    def scorer_config(self, params: dict, scales: dict | None = None) -> dict:
        """The JSON config of a scorer with ``params``."""
        base = EventWeighting(self.event_weights, max_items=self.max_history)
        return {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "params": dict(params),
            "user_weight": params["user_weight"],
            "query_weighting": base.replace(
                position_tau=params["query_tau"], half_life_days=params["half_life_days"]
            ).to_dict(),
            "history_weighting": base.replace(
                position_tau=params["history_tau"], half_life_days=params["half_life_days"]
            ).to_dict(),
            "blend_weights": {c: params[f"w_{c}"] for c in ("twotower", "ease", "covisit", "pop")},
            "scales": dict(scales or {}),
            "cross_sell_prior": {"half_life_days": params["cross_half_life_days"]},
            "cross_sell_weights": {
                "covisit": params["cross_covisit"],
                "embedding": params["cross_embedding"],
                "pop": params["cross_pop"],
            },
            "complements": dict(self.complement_params),
        }

    def _history_arrays(self, train: Interactions) -> dict:
        """The last ``max_history`` events per user, in time order (stored for known users)."""
        order = np.lexsort((train.items, train.timestamps, train.users))
        users = train.users[order]
        counts = np.bincount(users, minlength=train.n_users)
        ends = np.cumsum(counts)
        from_end = ends[users] - np.arange(len(users))  # 1 for each user's latest event
        keep = order[from_end <= self.max_history]
        indptr = np.zeros(train.n_users + 1, dtype=np.int64)
        np.cumsum(np.minimum(counts, self.max_history), out=indptr[1:])
        return {
            "history_indptr": indptr,
            "history_items": train.items[keep],
            "history_timestamps": train.timestamps[keep].astype(np.float64),
            "history_event_codes": event_codes(train.event_types[keep]),
        }

    # ------------------------------------------------------------------ Recommender API
    def _ready(self) -> BlendScorer:
        if self.scorer is None:
            raise NotFittedError("default model is not fitted; call fit() or from_arrays()")
        return self.scorer

    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Full-catalogue scores of known users, moved by the intent of their latest events
        (``ComplementScorer.intent``), as the engine moves them."""
        scorer = self._ready()
        scores = scorer.score_users(users)
        if not self.complements:
            return scores
        if self._intents is None:
            self._intents = ComplementScorer(self.complements, scorer.config["complements"])
        unit = sum(abs(w) for w in scorer.weights.values())
        everything = np.arange(scorer.n_items)
        for row, user in enumerate(torch.as_tensor(users).tolist()):
            state = scorer.user_state(int(user))
            intent = self._intents.intent(state.items, state.event_types, state.timestamps)
            if intent is not None:
                moved = self._intents.adjust(everything, scores[row].cpu().numpy(), intent, unit)
                scores[row] = torch.from_numpy(moved).to(scores.device)
        return scores

    def retrieval_scores(self, users: torch.Tensor) -> torch.Tensor:
        """The embedding retrieval path alone (query vector . item vectors)."""
        return self._ready().retrieval_scores(users)

    def score_histories(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores of unknown users whose weighted histories are given (both decays skipped)."""
        scorer = self._ready()
        histories = histories.to(scorer.device, torch.float32)
        users = torch.full((histories.shape[0],), -1, dtype=torch.int64)
        return scorer.blend(scorer.components(users, histories, histories))

    def score_states(self, states) -> torch.Tensor:
        return self._ready().score_states(states)

    def score_candidates(self, state: UserState, candidates) -> np.ndarray:
        return self._ready().score_candidates(state, candidates)

    def query_vector(self, state: UserState) -> np.ndarray:
        return self._ready().query_vector(state)

    def similar_items(self, item: int, k: int):
        return self._ready().similar_items(item, k)

    def cross_sell(self, basket, k: int):
        return self._ready().cross_sell(basket, k)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays, config = self._ready().to_arrays()
        tower = {k: v for k, v in self.item_tower.items() if k != "config"}
        if "config" in self.item_tower:
            config = config | {"item_tower": self.item_tower["config"]}
        return arrays | self.complements | tower, config

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict, device="auto") -> HybridModel:
        """A fitted model from ``to_arrays`` output (no training code or data needed)."""
        model = cls(device=device, tune=False, params=config.get("params"),
                    complements=config.get("complements"))  # fmt: skip
        model.scorer = BlendScorer.from_arrays(arrays, config, device=model.device)
        model.n_items = model.scorer.n_items
        model.complements = {k: v for k, v in arrays.items() if k.startswith("comp_")}
        model.item_tower = {k: v for k, v in arrays.items() if k.startswith("tower_")}
        if "item_tower" in config:
            model.item_tower["config"] = config["item_tower"]
        return model


def sample_users(scorer: BlendScorer, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` users with a stored history (seeded), for estimating component scales."""
    with_history = np.flatnonzero(scorer.history.row_lengths() > 0)
    if len(with_history) > n:
        with_history = np.sort(np.random.default_rng(seed).choice(with_history, n, replace=False))
    return with_history


def component_scales(components: dict) -> dict:
    """Mean over users of each component's standard deviation over items."""
    out = {}
    for name, value in components.items():
        std = value.to(torch.float64).std(dim=1) if value.shape[1] > 1 else value.new_ones(1)
        scale = float(std.mean()) if len(std) else 1.0
        out[name] = scale if np.isfinite(scale) and scale > 1e-12 else 1.0
    return out


def set_scales(scorer: BlendScorer, users: np.ndarray, batch: int = 512) -> None:
    """Estimate and store the component scales of ``scorer`` from ``users``' histories."""
    sums: dict[str, float] = {}
    for start in range(0, len(users), batch):
        block = torch.from_numpy(users[start : start + batch])
        hq, hh = scorer.user_histories(block)
        for name, value in component_scales(scorer.components(block, hq, hh, every=True)).items():
            sums[name] = sums.get(name, 0.0) + value * len(block)
    scales = {name: total / max(len(users), 1) for name, total in sums.items()}
    scorer.scales.update(scales)
    scorer.config["scales"] = dict(scorer.scales)


class RetrievalModel(HybridModel):
    """The default model's embedding retrieval path alone (query vector . item vectors).

    Fits exactly like ``HybridModel``; ``score`` is the inner product of the served query vector
    with the item vectors, what an ANN index over the item vectors returns.
    """

    name = "retrieval"

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.retrieval_scores(users)
