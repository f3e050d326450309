"""Engine answers: real-time updates, cold start, item-to-item, erasure, batching, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.models.blend import UserState
from recsys.recommend import Filters, RecommendRequest, UnknownItemError

from .conftest import NO_FILTERS, buyer

BAD_K = [0, -3, 2.5, "10", True, None]


def full_catalogue_top(engine, state: UserState, eligible: np.ndarray, k: int) -> list[str]:
    """Top-k of the model's batched full-catalogue scores among ``eligible`` item indices."""
    everything = np.arange(len(engine.item_ids))
    scores = engine.adjust(state, everything, engine.scorer.score_states([state])[0].numpy())
    order = np.lexsort((eligible, -scores[eligible]))[:k]
    return list(engine.item_ids[eligible[order]])


def test_an_event_just_passed_in_changes_the_answer(engine):
    user = buyer(engine)
    before = engine.recommend(user, k=10, filters=NO_FILTERS)
    item = before.item_ids[-1]
    event = {"item_id": item, "timestamp": 2e9, "event_type": "add_to_cart"}
    after = engine.recommend(user, k=10, events=[event], filters=NO_FILTERS)
    assert after.strategy == before.strategy == "personalised"
    assert (after.item_ids, [r["score"] for r in after.items]) != (
        before.item_ids,
        [r["score"] for r in before.items],
    )
    frame = pd.DataFrame([event | {"timestamp": pd.Timestamp(2e9, unit="s", tz="UTC")}])
    again = engine.recommend(user, k=10, events=frame, filters=NO_FILTERS)
    assert again.item_ids == after.item_ids  # events as a frame: the same answer


def test_events_already_stored_or_unknown_change_nothing(engine):
    user = buyer(engine)
    stored = engine.scorer.user_state(engine.user_index(user))
    replay = [
        {"item_id": engine.item_ids[i], "timestamp": float(t), "event_type": str(kind)}
        for i, t, kind in zip(stored.items, stored.timestamps, stored.event_types, strict=True)
    ]
    unknown = [{"item_id": "no-such-item", "timestamp": 2e9, "event_type": "purchase"}]
    state = engine.user_state(user, replay + unknown)
    assert np.array_equal(state.items, stored.items)
    plain = engine.recommend(user, k=10, filters=NO_FILTERS)
    assert engine.recommend(user, k=10, events=replay + unknown, filters=NO_FILTERS) == plain


def test_cold_start_popular_then_session(engine):
    popular = engine.recommend("never-seen", k=10, filters=NO_FILTERS)
    assert popular.strategy == "popular" and popular.model_version == "v-test"
    counts = engine.bundle.arrays["popularity"]
    expected = engine.item_ids[np.lexsort((np.arange(len(counts)), -counts))[:10]]
    assert popular.item_ids == list(expected)
    events = [{"item_id": popular.item_ids[3], "timestamp": 2e9, "event_type": "view"}]
    session = engine.recommend("never-seen", k=10, events=events, filters=NO_FILTERS)
    assert session.strategy == "session" and session.item_ids != popular.item_ids


def test_every_answer_carries_the_model_version(engine):
    user = buyer(engine)
    item = engine.item_ids[0]
    answers = [
        engine.recommend(user),
        engine.recommend("nobody"),
        engine.similar_items(item),
        engine.cross_sell([item]),
        *engine.recommend_many([RecommendRequest(user), RecommendRequest("nobody")]),
    ]
    assert {a.model_version for a in answers} == {"v-test"}


def test_similar_items(engine):
    item = engine.item_ids[engine.popular_order[0]]
    answer = engine.similar_items(item, k=10, filters=NO_FILTERS)
    assert answer.strategy == "similar" and item not in answer.item_ids and len(answer.items) == 10
    everything = engine.similar_items(item, k=10_000, filters=NO_FILTERS)
    assert len(everything.items) == len(engine.item_ids) - 1
    with pytest.raises(UnknownItemError, match="unknown item 'nope'"):
        engine.similar_items("nope")


def test_cross_sell(engine):
    basket = list(engine.item_ids[engine.popular_order[:3]])
    answer = engine.cross_sell(basket + ["ghost"], k=10, filters=NO_FILTERS)
    assert answer.strategy == "cross-sell" and len(answer.items) == 10
    assert not set(answer.item_ids) & set(basket)
    assert answer.meta["unknown_items"] == ["ghost"]
    assert engine.cross_sell(basket, k=10, filters=NO_FILTERS).item_ids == answer.item_ids
    with pytest.raises(UnknownItemError, match="none of the basket items is known: ghost"):
        engine.cross_sell(["ghost"])
    with pytest.raises(ValueError, match="at least one basket item"):
        engine.cross_sell([])
    with pytest.raises(ValueError, match="basket must be a list"):
        engine.cross_sell(basket[0])


def test_cross_sell_for_a_user_drops_their_purchases_and_suppresses(engine):
    user = buyer(engine)
    bought = {
        engine.item_ids[i]
        for i, kind in zip(*_stored(engine, user), strict=True)
        if kind == "purchase"
    }
    basket = [engine.item_ids[engine.popular_order[0]]]
    filters = Filters(in_stock=False, suppress_recent=True)
    first = engine.cross_sell(basket, k=5, user_id=user, filters=filters)
    assert not set(first.item_ids) & bought
    second = engine.cross_sell(basket, k=5, user_id=user, filters=filters)
    assert not set(first.item_ids) & set(second.item_ids)


def _stored(engine, user):
    state = engine.scorer.user_state(engine.user_index(user))
    return state.items, state.event_types


@pytest.mark.parametrize("k", BAD_K)
def test_bad_k_is_a_clear_error(engine, k):
    item = engine.item_ids[0]
    for call in (
        lambda: engine.recommend("u", k=k),
        lambda: engine.similar_items(item, k=k),
        lambda: engine.cross_sell([item], k=k),
        lambda: engine.recommend_many([RecommendRequest("u", k=k)]),
    ):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            call()


def test_bad_engine_settings_are_clear_errors(make_engine):
    with pytest.raises(ValueError, match="candidates must be positive"):
        make_engine(candidates=0)


def test_forget_user_removes_vector_history_and_suppression(engine):
    user = buyer(engine)
    position = engine.user_index(user)
    engine.recommend(user, k=5, filters=Filters(suppress_recent=True))
    assert engine.recently.recent(user)
    stored = len(engine.scorer.user_state(position).items)
    removed = engine.forget_user(user)
    assert removed == 5 + 1 + stored  # suppressed items + the vector + the stored events
    assert not engine.scorer.user_vectors[position].any()
    assert len(engine.scorer.user_state(position).items) == 0
    assert engine.recently.recent(user) == []
    assert engine.user_index(user) is None
    assert engine.forget_user(user) == 0  # nothing left
    assert engine.recommend(user, k=5).strategy == "popular"
    assert engine.forget_user("never-seen") == 0


def test_forget_hashed(engine):
    users = list(engine.user_ids[:3])
    assert engine.forget_hashed({f"h:{u}" for u in users}, lambda u: f"h:{u}") == 3
    assert all(engine.user_index(u) is None for u in users)
    assert engine.forget_hashed(set(), str) == 0


@pytest.mark.parametrize("exact_limit", [20_000, 0], ids=["exact", "ann"])
def test_recommend_many_equals_single_requests(make_engine, exact_limit):
    engine = make_engine(exact_scoring_limit=exact_limit, candidates=30)
    rng = np.random.default_rng(3)
    users = [str(u) for u in rng.choice(engine.user_ids, 12, replace=False)] + ["anon"]
    events = [{"item_id": engine.item_ids[5], "timestamp": 2e9, "event_type": "view"}]
    requests = [
        RecommendRequest(u, k=int(k), events=events if i % 2 else None, filters=f)
        for i, (u, k, f) in enumerate(
            zip(users, rng.choice([1, 5, 10, 40], len(users)),
                [Filters(), NO_FILTERS, Filters(max_price=30.0)] * 5, strict=False)
        )
    ]  # fmt: skip
    batched = engine.recommend_many(requests)
    single = [engine.recommend(r.user_id, r.k, r.events, r.filters) for r in requests]
    assert batched == single


def test_exact_path_for_restrictive_filters(make_engine):
    engine = make_engine(exact_scoring_limit=30, candidates=5, popular_candidates=0)
    user = buyer(engine)
    table = engine.bundle.items.set_index("item_id").reindex(engine.item_ids)
    small = tuple(table["category"].value_counts().index[:2])  # the two largest: <= 30 items
    filters = Filters(categories=small, in_stock=False, exclude_purchased=False)
    eligible = engine.catalogue.mask(filters).indices()
    assert 10 < len(eligible) <= 30
    state = engine.user_state(user)
    answer = engine.recommend(user, k=10, filters=filters)
    assert answer.item_ids == full_catalogue_top(engine, state, eligible, 10)


@pytest.mark.parametrize("exact_limit", [20_000, 0], ids=["exact", "ann-covering"])
def test_served_path_agrees_with_full_catalogue_scoring(make_engine, exact_limit):
    # the ANN engine asks for more candidates than there are items: they cover the catalogue
    engine = make_engine(exact_scoring_limit=exact_limit, candidates=1000)
    everything = np.arange(len(engine.item_ids))
    for user in list(engine.user_ids[:25]) + [buyer(engine)]:
        state = engine.user_state(user)
        got = engine.recommend(str(user), k=20, filters=NO_FILTERS).item_ids
        assert got == full_catalogue_top(engine, state, everything, 20)
        request = RecommendRequest(str(user), 20, None, NO_FILTERS)
        candidates, scores = engine.candidate_scores([request])[0]
        full = engine.scorer.score_states([state])[0].numpy()[candidates]
        reference = engine.adjust(state, candidates, full)
        assert np.allclose(scores, reference, rtol=1e-5, atol=1e-5)


def test_ann_path_answers_carry_the_model_scores(make_engine):
    engine = make_engine(exact_scoring_limit=0, candidates=10, popular_candidates=0)
    for user in engine.user_ids[:10]:
        answer = engine.recommend(str(user), k=10, filters=NO_FILTERS)
        state = engine.user_state(user)
        everything = np.arange(len(engine.item_ids))
        reference = engine.adjust(state, everything, engine.scorer.score_states([state])[0].numpy())
        got = np.array([row["score"] for row in answer.items])
        expected = reference[[engine.item_index(i) for i in answer.item_ids]]
        assert len(got) == 10 and np.allclose(got, expected, atol=1e-5)
