"""The online engine: retrieve -> filter -> rank, for users, items and baskets.

Every operation is one request type answered by one engine method (``Request.method``);
:meth:`RecommendationEngine.answer_many` takes any mix of them, batches the personalised ones
into one ANN search, and isolates failures: a request with a bad ``k`` or an unknown id gets its
own error and never fails the others. A new operation is a request dataclass plus its method.

Personalised answers blend the user's trained vector with a session vector of their most recent
events (those stored with the model plus those ingested since), so an event just ingested changes
the very next answer. Candidates are every eligible item when at most ``exact_scoring_limit``
items pass the filters (small catalogues, restrictive filters: exact, and cheap); otherwise ANN
search over the item vectors, the co-visitation neighbours of the recent items and the most
popular items. The model scores the candidates on the request's sparse history
(``recsys.recommend.scoring``); business filters drop what may not be shown; popular in-filter
items backfill so that k items come back whenever k eligible items exist. The catalogue is
live: :meth:`RecommendationEngine.apply_catalogue` takes stock, price, category and active
changes and items added after training (``recsys.recommend.live_catalogue``, ``new_items``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.bundle import ServingBundle
from recsys.data.frame import pd
from recsys.errors import InvalidInputError, RecsysError
from recsys.index import make_index
from recsys.models.blend import BlendScorer, UserState
from recsys.models.complement_scorer import ComplementScorer, Intent
from recsys.recommend.filters import Catalogue, Eligible, Filters
from recsys.recommend.item_answers import UnknownItemError, basket_scores
from recsys.recommend.live_catalogue import ReadWriteLock, apply_changes, trained_content
from recsys.recommend.new_items import ItemContent, NewItems
from recsys.recommend.ranked import answer_of, backfill, raise_first, rank, rank_catalogue
from recsys.recommend.requests import Answer, RecommendRequest, Request
from recsys.recommend.scoring import PreparedState, RequestScorer
from recsys.recommend.state import lookup, merge_events
from recsys.recommend.suppression import RecentRecommendations

logger = logging.getLogger(__name__)

PURCHASE = "purchase"
EXACT_SCORING_LIMIT = 20_000  # score every eligible item exactly when at most this many
RECENT_ITEMS = 5  # co-visitation neighbours of this many latest items join the candidates


@dataclass
class _Plan:
    user_id: str
    k: int
    state: UserState
    eligible: Eligible
    prepared: PreparedState | None = None  # None: nothing known, popular answer
    candidates: np.ndarray | None = None
    query: np.ndarray | None = None  # set when ANN search should add candidates
    intent: Intent | None = None  # what the latest events ask of the answer


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
    popular_candidates : int
        Most popular items added to every request's candidates.
    suppress_seconds : float
        Window of the ``suppress_recent`` filter.
    exact_scoring_limit : int
        Score every eligible item (no ANN) when at most this many pass a request's filters.
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
        exact_scoring_limit: int = EXACT_SCORING_LIMIT,
    ) -> None:
        if int(candidates) <= 0 or int(popular_candidates) < 0 or int(exact_scoring_limit) < 0:
            raise InvalidInputError(
                "candidates must be positive, popular_candidates and exact_scoring_limit "
                f"non-negative; got {candidates}, {popular_candidates}, {exact_scoring_limit}"
            )
        self.bundle = bundle
        self.model_version = str(model_version)
        self.scorer = BlendScorer.from_arrays(bundle.arrays, bundle.config, device=device)
        self.requests = RequestScorer(self.scorer)
        settings = bundle.config.get("complements")  # bundles before complements: none
        self.complements = None if settings is None else ComplementScorer(bundle.arrays, settings)
        self.item_ids = np.asarray(bundle.item_ids, dtype=object).astype(str)
        self.user_ids = np.asarray(bundle.user_ids, dtype=object).astype(str)
        self.n_trained = len(self.item_ids)
        self._trained = self.items_index = pd.Index(self.item_ids)  # the latter grows
        self._users = pd.Index(self.user_ids)
        self.n_candidates = int(candidates)
        self.exact_scoring_limit = int(exact_scoring_limit)
        self.prior = self.requests.prior  # replaced (grown) when new items arrive
        self.popular_order = np.argsort(-self.prior, kind="stable")
        self.popular_candidates = self.popular_order[: int(popular_candidates)]
        self.catalogue = Catalogue(self.item_ids, bundle.items, order=self.popular_order)
        vectors = self.requests.item_vectors.astype(np.float32, copy=False)
        self.index = make_index(index_kind, dim=vectors.shape[1], device=device)
        self.index.build(np.arange(len(vectors), dtype=np.int64), vectors)
        self.new_items = NewItems(self.n_trained, dim=vectors.shape[1])
        self._content: ItemContent | None = None
        self._rw = ReadWriteLock()
        self.recently = RecentRecommendations(suppress_seconds)
        self._forgotten: set[str] = set()
        self._lock = threading.Lock()
        logger.info(
            "engine ready: model %s, %d items, %d users, index %s",
            self.model_version, len(self.item_ids), len(self.user_ids), self.index.describe(),
        )  # fmt: skip

    # ------------------------------------------------------------------ state
    def item_index(self, item_id: str) -> int:
        position = lookup(self.items_index, [str(item_id)])[0]
        if position < 0:
            raise UnknownItemError(f"unknown item {item_id!r}")
        return int(position)

    def user_index(self, user_id: str) -> int | None:
        user_id = str(user_id)
        if user_id in self._forgotten:
            return None
        position = lookup(self._users, [user_id])[0]
        return None if position < 0 else int(position)

    def user_state(self, user_id: str | None, events=None, now: float | None = None) -> UserState:
        """The model's history of the user (if known) followed by the given recent events."""
        user = None if user_id is None else self.user_index(user_id)
        stored = None if user is None else self.scorer.user_state(user)
        return merge_events(stored, events, self._trained, now)  # the model's items only

    def search_width(self, k: int) -> int:
        """How many ANN candidates a request for ``k`` items asks the index for."""
        return min(max(self.n_candidates, 4 * int(k)), len(self.item_ids))

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
        """Answer several requests with one batched ANN search (dynamic request batching);
        raises the first request's error if any request is bad."""
        return raise_first([self._finish(plan) for plan in raise_first(self._plans(requests))])

    def answer_many(self, requests: Sequence[Request]) -> list[Answer | dict | RecsysError]:
        """Answer any mix of requests: personalised ones in one batch, the rest one by one.

        Parameters
        ----------
        requests : sequence of Request
            ``RecommendRequest``, ``SimilarRequest``, ``CrossSellRequest``, ``CategoriesRequest``.

        Returns
        -------
        list
            Per request, in order: its answer, or the ``RecsysError`` it raised (a bad ``k``,
            an unknown item or category). One request's error never fails the others; an error
            that is not a ``RecsysError`` is a bug and propagates.
        """
        with self._rw.reading():  # catalogue changes wait for the answers in flight
            return self._answer_many(requests)

    def _answer_many(self, requests: Sequence[Request]) -> list[Answer | dict | RecsysError]:
        out: list = [None] * len(requests)
        batched = [i for i, r in enumerate(requests) if isinstance(r, RecommendRequest)]
        plans = self._plans([requests[i] for i in batched])
        for position, plan in zip(batched, plans, strict=True):
            out[position] = plan if isinstance(plan, RecsysError) else self._finish(plan)
        for position, request in enumerate(requests):
            if isinstance(request, RecommendRequest):
                continue
            if not isinstance(request, Request):
                raise TypeError(f"not a recommendation request: {request!r}")
            try:
                out[position] = getattr(self, request.method)(**request.arguments())
            except RecsysError as exc:
                out[position] = exc
        return out

    def candidate_scores(
        self, requests: Sequence[RecommendRequest]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(eligible candidates, model scores) per request, before ranking and backfill.

        Requests with nothing known about the user get the most popular eligible items, scored
        by the popularity prior. This is what ``recommend_many`` ranks (for evaluation).
        """
        out = []
        for plan in raise_first(self._plans(requests)):
            if plan.prepared is None:
                chosen, _ = backfill(self, np.zeros(0, np.int64), plan.eligible, plan.k)
                out.append((chosen, self.prior[chosen].astype(np.float32)))
            else:
                out.append((plan.candidates, self._score(plan)))
        return out

    def _plans(self, requests: Sequence[RecommendRequest]) -> list[_Plan | RecsysError]:
        """One plan per request (or the error that request raised), after one ANN search."""
        plans: list[_Plan | RecsysError] = []
        for request in requests:
            try:
                plans.append(self._plan(request))
            except RecsysError as exc:
                plans.append(exc)
        searching = [p for p in plans if isinstance(p, _Plan) and p.query is not None]
        if searching:
            want = max(self.search_width(plan.k) for plan in searching)
            queries = np.stack([plan.query for plan in searching]).astype(np.float32)
            _, found = self.index.search(queries, want)
            for plan, row in zip(searching, found, strict=True):
                ann = row[np.not_equal(row, None)].astype(np.int64)
                pool = np.unique(np.concatenate([plan.candidates, ann]))
                plan.candidates = pool[plan.eligible(pool)]
        return plans

    def _plan(self, request: RecommendRequest) -> _Plan:
        k = self._check_k(request.k)
        filters = request.filters or Filters()
        state = self.user_state(request.user_id, request.events, request.now)
        excluded = self._excluded(request.user_id, state, filters)
        plan = _Plan(request.user_id, k, state, Eligible(self.catalogue.mask(filters), excluded))
        if state.user is None and len(state.items) == 0:
            return plan  # nothing known: popular in-filter items
        plan.prepared = self.requests.prepare(state)
        if self.complements is not None:
            plan.intent = self.complements.intent(state.items, state.event_types, state.timestamps)
        if plan.eligible.count <= self.exact_scoring_limit:
            plan.candidates = plan.eligible.indices()  # few eligible items: score them all
            return plan
        recent = np.asarray(state.items[-RECENT_ITEMS:], dtype=np.int64)
        neighbours = self.requests.next_index[recent].reshape(-1)
        pool = np.concatenate([neighbours[neighbours >= 0], self.popular_candidates])
        if plan.intent is not None:  # the just-bought item's complements must be candidates
            pool = np.concatenate([pool, np.argsort(-plan.intent.complements)[: self.n_candidates]])
        plan.candidates = pool.astype(np.int64, copy=False)  # filtered after the ANN search
        plan.query = plan.prepared.query
        return plan

    def _finish(self, plan: _Plan) -> Answer:
        if plan.prepared is None:
            chosen, scores = backfill(self, np.zeros(0, np.int64), plan.eligible, plan.k)
            strategy = "popular"
        else:
            scores = self._score(plan)
            chosen, scores = rank(self, plan.candidates, scores, plan.eligible, plan.k)
            strategy = "personalised" if plan.state.user is not None else "session"
        self.recently.record(plan.user_id, chosen)
        return answer_of(self, chosen, scores, strategy, user_id=plan.user_id)

    def _score(self, plan: _Plan) -> np.ndarray:
        """Model scores of the plan's candidates, moved by what the customer just did."""
        scores = self.new_items.score(self.requests, plan.prepared, plan.candidates)
        return self.adjust(plan.state, plan.candidates, scores, plan.intent)

    def adjust(self, state: UserState, candidates, scores, intent=False) -> np.ndarray:
        """Model ``scores`` of ``candidates`` moved by the intent of ``state``'s latest events
        (``recsys.models.complement_scorer``; ``intent`` when already known)."""
        if self.complements is None:
            return np.asarray(scores, dtype=np.float32)
        if intent is False:
            intent = self.complements.intent(state.items, state.event_types, state.timestamps)
        # the blend's components are scaled to unit spread: the weights' sum is its spread
        unit = sum(abs(w) for w in self.scorer.weights.values())
        candidates = self.new_items.representative(candidates)  # new items: as their proxy
        return self.complements.adjust(candidates, scores, intent, unit)

    def similar_items(self, item_id: str, k: int = 10, filters: Filters | None = None) -> Answer:
        """Items like ``item_id`` (co-purchase + embedding similarity + popularity prior); what
        goes with it is :meth:`cross_sell`."""
        k = self._check_k(k)
        item = self.item_index(item_id)
        filters = filters or Filters(exclude_purchased=False)
        eligible = Eligible(self.catalogue.mask(filters), np.array([item]))
        scores = self.new_items.similar(self.requests, item)
        chosen, values = rank_catalogue(self, scores, eligible, k)
        return answer_of(self, chosen, values, "similar", item_id=item_id)

    def cross_sell(
        self,
        basket: Sequence[str],
        k: int = 10,
        user_id: str | None = None,
        events=None,
        filters: Filters | None = None,
        categories: Mapping[str, str] | None = None,
    ) -> Answer:
        """What goes with ``basket`` (learned complements; ``recsys.models.complements``);
        basket items (and the user's purchases) never come back. ``categories`` may name the
        category of basket items the model does not know (new items): they get its complements.
        """
        k = self._check_k(k)
        scores, known, unknown = basket_scores(self, basket, categories)
        filters = filters or Filters()
        excluded = [known]
        if user_id is not None:
            state = self.user_state(user_id, events)
            excluded.append(self._excluded(user_id, state, filters))
        eligible = Eligible(self.catalogue.mask(filters), np.concatenate(excluded))
        chosen, values = rank_catalogue(self, scores, eligible, k)
        if user_id is not None:
            self.recently.record(user_id, chosen)
        answer = answer_of(self, chosen, values, "cross-sell", user_id=user_id)
        answer.meta["unknown_items"] = unknown
        return answer

    def categories(self) -> dict:
        """The catalogue's categories with their item counts, by name (case-insensitive names
        are one category), and the model version."""
        rows = [{"category": name, "items": n} for name, n in self.catalogue.categories()]
        return {"categories": rows, "model_version": self.model_version}

    def recently_shown(self, user_id: str) -> dict:
        """Items recommended to ``user_id`` within the suppression window, on this replica."""
        shown = [str(self.item_ids[i]) for i in self.recently.recent(str(user_id))]
        return {"items": shown, "model_version": self.model_version}

    def apply_catalogue(self, rows: Sequence[dict]) -> dict:
        """Apply catalogue change rows (``item_id`` and any of title, category, price, in_stock,
        active; ``recsys.recommend.live_catalogue``); returns ``{"updated": n, "added": m}``."""
        with self._rw.writing():
            return apply_changes(self, rows)

    def item_content(self) -> ItemContent:
        """Content vectors for new items (built on first use)."""
        if self._content is None:
            self._content = trained_content(self)
        return self._content

    def forget_user(self, user_id: str) -> int:
        """Drop the user's trained vector, stored history and suppression memory; returns how
        many in-memory records were removed."""
        user_id = str(user_id)
        removed = self.recently.forget(user_id)
        position = lookup(self._users, [user_id])[0]
        with self._lock:
            if position >= 0 and user_id not in self._forgotten:
                self._forgotten.add(user_id)
                removed += 1 + self.requests.forget_user(int(position))
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
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
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
            out.append(np.asarray(self.recently.recent(str(user_id)), dtype=np.int64))
        return np.concatenate(out) if out else np.array([], dtype=np.int64)  # Eligible dedupes
