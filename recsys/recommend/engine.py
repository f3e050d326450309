"""The online engine: retrieve -> filter -> rank, for users, items and baskets.

Personalised answers blend the user's trained vector with a session vector of their most recent
events (those stored with the model plus those ingested since), so an event just ingested changes
the very next answer. Candidates come from ANN search over the item vectors, co-visitation
neighbours of the recent items and the most popular items; the model scores them; business filters
drop what may not be shown; popular in-filter items backfill so that k items come back whenever k
eligible items exist.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recsys.bundle import ServingBundle
from recsys.data.frame import pd
from recsys.index import make_index
from recsys.models.blend import BlendScorer, UserState
from recsys.recommend.filters import Catalogue, Filters
from recsys.recommend.suppression import RecentRecommendations

logger = logging.getLogger(__name__)

PURCHASE = "purchase"
EXACT_SCORING_LIMIT = 20_000  # restrictive filters: score every allowed item when this few


class UnknownItemError(KeyError):
    """An item id the served model does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is for people
        return str(self.args[0])


@dataclass
class Answer:
    """One response: items best first, how they were found, and the model version."""

    items: list[dict]
    strategy: str
    model_version: str
    meta: dict = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        return [row["item_id"] for row in self.items]


@dataclass
class RecommendRequest:
    """One personalised request (see :meth:`RecommendationEngine.recommend`)."""

    user_id: str
    k: int = 10
    events: object = None
    filters: Filters | None = None
    now: float | None = None


@dataclass
class _Plan:
    user_id: str
    k: int
    state: UserState
    allowed: np.ndarray
    candidates: np.ndarray | None = None
    query: np.ndarray | None = None


def _as_events(events) -> tuple[list, list, list]:
    """(item ids, unix seconds, event types) of stored events (dicts or a frame)."""
    if events is None:
        return [], [], []
    if isinstance(events, pd.DataFrame):
        events = events.to_dict("records")
    items, times, types = [], [], []
    for event in events:
        item = event.get("item_id")
        if item is None or item == "":
            continue
        ts = event.get("timestamp")
        if hasattr(ts, "timestamp"):
            ts = ts.timestamp()
        elif isinstance(ts, str):
            ts = pd.Timestamp(ts).timestamp()
        items.append(str(item))
        times.append(float(ts) if ts is not None else time.time())
        types.append(str(event.get("event_type") or "interaction"))
    return items, times, types


class RecommendationEngine:
    """Answers recommendation requests from a serving bundle.

    Parameters
    ----------
    bundle : ServingBundle
        Loaded with ``recsys.bundle.load_bundle``.
    model_version : str
        Reported in every answer (the registry version, or a label for a local bundle).
    index_kind : str
        ``recsys.index.make_index`` kind for the item vectors (``auto``: by catalogue size/device).
    device : str
        Where the model's tensors live (``auto``: CUDA when present).
    candidates : int
        ANN candidates per request (before filtering).
    suppress_seconds : float
        Window of the ``suppress_recent`` filter.
    """

    def __init__(
        self,
        bundle: ServingBundle,
        model_version: str = "local",
        index_kind: str = "auto",
        device: str = "auto",
        candidates: int = 200,
        popular_candidates: int = 100,
        suppress_seconds: float = 3600.0,
    ) -> None:
        self.bundle = bundle
        self.model_version = str(model_version)
        self.scorer = BlendScorer.from_arrays(bundle.arrays, bundle.config, device=device)
        self.item_ids = np.asarray(bundle.item_ids, dtype=object).astype(str)
        self.user_ids = np.asarray(bundle.user_ids, dtype=object).astype(str)
        self._items = pd.Index(self.item_ids)
        self._users = pd.Index(self.user_ids)
        self.catalogue = Catalogue(self.item_ids, bundle.items)
        self.n_candidates = int(candidates)
        popularity = self.scorer.popularity.detach().cpu().numpy()
        self.popular_order = np.argsort(-popularity, kind="stable")
        self.popular_candidates = self.popular_order[: int(popular_candidates)]
        vectors = self.scorer.item_vectors.detach().cpu().numpy().astype(np.float32)
        self.index = make_index(index_kind, dim=vectors.shape[1], device=device)
        self.index.build(np.arange(len(vectors), dtype=np.int64), vectors)
        self.recently = RecentRecommendations(suppress_seconds)
        self._forgotten: set[str] = set()
        self._lock = threading.Lock()
        logger.info(
            "engine ready: model %s, %d items, %d users, index %s",
            self.model_version, len(self.item_ids), len(self.user_ids), self.index.describe(),
        )  # fmt: skip

    # ------------------------------------------------------------------ state
    def item_index(self, item_id: str) -> int:
        position = self._items.get_indexer([str(item_id)])[0]
        if position < 0:
            raise UnknownItemError(f"unknown item {item_id!r}")
        return int(position)

    def user_index(self, user_id: str) -> int | None:
        if user_id in self._forgotten:
            return None
        position = self._users.get_indexer([str(user_id)])[0]
        return None if position < 0 else int(position)

    def user_state(self, user_id: str | None, events=None, now: float | None = None) -> UserState:
        """The model's history of the user (if known) followed by the given recent events."""
        user = None if user_id is None else self.user_index(user_id)
        items, times, types = [], [], []
        if user is not None:
            stored = self.scorer.user_state(user)
            items = list(np.asarray(stored.items, dtype=np.int64))
            times = list(np.asarray(stored.timestamps, dtype=np.float64))
            types = list(stored.event_types)
        ids, live_times, live_types = _as_events(events)
        positions = self._items.get_indexer(ids) if ids else np.array([], dtype=np.int64)
        seen = set(zip(items, times, types, strict=True))
        for position, ts, kind in zip(positions, live_times, live_types, strict=True):
            if position >= 0 and (int(position), ts, kind) not in seen:
                items.append(int(position))
                times.append(ts)
                types.append(kind)
        order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
        return UserState(
            user=user,
            items=np.asarray(items, dtype=np.int64)[order],
            timestamps=np.asarray(times, dtype=np.float64)[order],
            event_types=list(np.asarray(types, dtype=object)[order]),
            now=now,
        )

    # ------------------------------------------------------------------ answers
    def recommend(
        self,
        user_id: str,
        k: int = 10,
        events=None,
        filters: Filters | None = None,
        now: float | None = None,
    ) -> Answer:
        """Personalised top-``k`` for ``user_id``; ``events`` are their recent stored events."""
        return self.recommend_many([RecommendRequest(user_id, k, events, filters, now)])[0]

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[Answer]:
        """Answer several requests with one batched ANN search (dynamic request batching)."""
        plans = [self._plan(request) for request in requests]
        searching = [plan for plan in plans if plan.query is not None]
        if searching:
            want = max(min(max(self.n_candidates, 4 * p.k), len(self.item_ids)) for p in searching)
            queries = np.stack([plan.query for plan in searching]).astype(np.float32)
            _, found = self.index.search(queries, want)
            for plan, row in zip(searching, found, strict=True):
                ann = np.asarray([i for i in row if i is not None], dtype=np.int64)
                pool = np.unique(np.concatenate([plan.candidates, ann]))
                plan.candidates = pool[plan.allowed[pool]]
        return [self._finish(plan) for plan in plans]

    def _plan(self, request: RecommendRequest) -> _Plan:
        k = self._check_k(request.k)
        filters = request.filters or Filters()
        state = self.user_state(request.user_id, request.events, request.now)
        allowed = self.catalogue.allowed(filters)
        allowed[self._excluded(request.user_id, state, filters)] = False
        plan = _Plan(request.user_id, k, state, allowed)
        if state.user is None and len(state.items) == 0:
            return plan  # nothing known: popular in-filter items
        n_allowed = int(allowed.sum())
        if n_allowed <= EXACT_SCORING_LIMIT and n_allowed < 0.1 * len(allowed):
            plan.candidates = np.flatnonzero(allowed)  # restrictive filters: score all eligible
            return plan
        recent = np.asarray(state.items[-5:], dtype=np.int64)
        neighbours = (
            self.scorer.next_index[recent].reshape(-1).cpu().numpy()
            if len(recent)
            else np.array([], dtype=np.int64)
        )
        pool = np.unique(np.concatenate([neighbours, self.popular_candidates]))
        pool = pool[pool >= 0]  # neighbour lists are padded with -1
        plan.candidates = pool[allowed[pool]]
        plan.query = self.scorer.query_vector(state)
        return plan

    def _finish(self, plan: _Plan) -> Answer:
        if plan.candidates is None:
            chosen, scores = self._backfill(np.array([], dtype=np.int64), plan.allowed, plan.k)
            strategy = "popular"
        else:
            scores = (
                self.scorer.score_candidates(plan.state, plan.candidates)
                if len(plan.candidates)
                else np.array([], dtype=np.float32)
            )
            chosen, scores = self._rank(plan.candidates, np.asarray(scores), plan.allowed, plan.k)
            strategy = "personalised" if plan.state.user is not None else "session"
        self.recently.record(plan.user_id, chosen)
        return self._answer(chosen, scores, strategy, user_id=plan.user_id)

    def similar_items(self, item_id: str, k: int = 10, filters: Filters | None = None) -> Answer:
        """Items like ``item_id`` (co-purchase + embedding similarity + popularity prior)."""
        k = self._check_k(k)
        item = self.item_index(item_id)
        filters = filters or Filters(exclude_purchased=False)
        allowed = self.catalogue.allowed(filters)
        allowed[item] = False
        scores = self.scorer.cross_sell_scores([item]).detach().cpu().numpy()
        chosen, values = self._rank(np.arange(len(scores)), scores, allowed, k)
        return self._answer(chosen, values, "similar", item_id=item_id)

    def cross_sell(
        self,
        basket: Sequence[str],
        k: int = 10,
        user_id: str | None = None,
        events=None,
        filters: Filters | None = None,
    ) -> Answer:
        """What goes with ``basket``; basket items (and the user's purchases) never come back."""
        k = self._check_k(k)
        if not basket:
            raise ValueError("cross-sell needs at least one basket item")
        positions = self._items.get_indexer([str(i) for i in basket])
        known = np.unique(positions[positions >= 0])
        unknown = [str(i) for i, p in zip(basket, positions, strict=True) if p < 0]
        if len(known) == 0:
            raise UnknownItemError(f"none of the basket items is known: {', '.join(unknown)}")
        filters = filters or Filters()
        allowed = self.catalogue.allowed(filters)
        allowed[known] = False
        if user_id is not None:
            state = self.user_state(user_id, events)
            allowed[self._excluded(user_id, state, filters)] = False
        scores = self.scorer.cross_sell_scores(known).detach().cpu().numpy()
        chosen, values = self._rank(np.arange(len(scores)), scores, allowed, k)
        if user_id is not None:
            self.recently.record(user_id, chosen)
        answer = self._answer(chosen, values, "cross-sell", user_id=user_id)
        answer.meta["unknown_items"] = unknown
        return answer

    def forget_user(self, user_id: str) -> int:
        """Drop the user's trained vector, stored history and suppression memory; returns how
        many in-memory records were removed."""
        removed = self.recently.forget(user_id)
        position = self._users.get_indexer([str(user_id)])[0]
        with self._lock:
            if position >= 0 and user_id not in self._forgotten:
                self._forgotten.add(user_id)
                removed += 1 + self.scorer.forget_user(int(position))
        return removed

    def example_user(self) -> str | None:
        """A known user with the longest stored history (for docs and smoke tests)."""
        lengths = self.scorer.history.row_lengths()
        if len(lengths) == 0 or lengths.max() == 0:
            return None
        return str(self.user_ids[int(np.argmax(lengths))])

    def forget_hashed(self, hashes: set[str], hash_id) -> int:
        """Forget every known user whose ``hash_id(user_id)`` is in ``hashes`` (erasures made
        before this model was loaded); returns how many were forgotten."""
        if not hashes:
            return 0
        gone = [u for u in self.user_ids if hash_id(u) in hashes]
        for user_id in gone:
            self.forget_user(user_id)
        return len(gone)

    # ------------------------------------------------------------------ helpers
    def _check_k(self, k: int) -> int:
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        return int(k)

    def _excluded(self, user_id: str | None, state: UserState, filters: Filters) -> np.ndarray:
        items = np.asarray(state.items, dtype=np.int64)
        out = []
        if filters.exclude_seen:
            out.append(items)
        elif filters.exclude_purchased and len(items):
            types = np.asarray(state.event_types, dtype=object)
            out.append(items[types == PURCHASE])
        if filters.suppress_recent and user_id is not None:
            out.append(np.asarray(self.recently.recent(user_id), dtype=np.int64))
        return np.unique(np.concatenate(out)) if out else np.array([], dtype=np.int64)

    def _rank(self, candidates, scores, allowed, k) -> tuple[np.ndarray, np.ndarray]:
        candidates = np.asarray(candidates, dtype=np.int64)
        keep = allowed[candidates] & np.isfinite(scores)
        candidates, scores = candidates[keep], scores[keep]
        order = np.lexsort((candidates, -scores))[:k]
        chosen, values = candidates[order], scores[order].astype(np.float64)
        if len(chosen) < k:
            extra, extra_scores = self._backfill(chosen, allowed, k - len(chosen))
            floor = float(values.min()) if len(values) else 0.0
            chosen = np.concatenate([chosen, extra])
            values = np.concatenate([values, np.minimum(extra_scores, floor) - 1e-6])
        return chosen, values

    def _backfill(self, taken: np.ndarray, allowed: np.ndarray, k: int):
        mask = allowed[self.popular_order]
        if len(taken):
            mask &= ~np.isin(self.popular_order, taken)
        extra = self.popular_order[mask][:k]
        popularity = self.scorer.prior.detach().cpu().numpy()
        return extra, popularity[extra].astype(np.float64)

    def _answer(self, chosen, scores, strategy: str, **meta) -> Answer:
        rows = [
            {
                "item_id": str(self.item_ids[i]),
                "score": round(float(s), 6),
                **self.catalogue.describe(i),
            }
            for i, s in zip(chosen, scores, strict=True)
        ]
        return Answer(rows, strategy, self.model_version, {k: v for k, v in meta.items() if v})
