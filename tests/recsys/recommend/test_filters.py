"""Filters never let a filtered item through, and k items come back whenever k are eligible."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.recommend import Filters

from .conftest import NO_FILTERS, buyer, purchases, seen


def brute_force_eligible(engine, user_id, filters: Filters, extra_excluded=()) -> set[str]:
    """Eligible item ids, computed from the item table and the stored history directly."""
    items = engine.bundle.items.set_index("item_id").reindex(engine.item_ids)
    ok = np.ones(len(items), dtype=bool)
    if filters.in_stock:
        ok &= items["in_stock"].fillna(True).to_numpy(dtype=bool)
    category = items["category"].to_numpy(dtype=object)
    if filters.categories is not None:
        ok &= np.isin(category, list(filters.categories))
    if filters.exclude_categories:
        ok &= ~np.isin(category, list(filters.exclude_categories))
    price = items["price"].to_numpy(dtype=float)
    if filters.min_price is not None:
        ok &= price >= filters.min_price
    if filters.max_price is not None:
        ok &= price <= filters.max_price
    allowed = set(engine.item_ids[ok])
    if user_id is not None and engine.user_index(user_id) is not None:
        if filters.exclude_seen:
            allowed -= seen(engine, user_id)
        elif filters.exclude_purchased:
            allowed -= purchases(engine, user_id)
    return allowed - set(extra_excluded)


def random_filters(rng, categories: list[str]) -> Filters:
    pick = rng.random(8)
    low = float(rng.choice([5.0, 10.0, 25.0, 80.0]))
    return Filters(
        exclude_purchased=bool(pick[0] < 0.5),
        exclude_seen=bool(pick[1] < 0.3),
        in_stock=bool(pick[2] < 0.7),
        categories=tuple(rng.choice(categories, int(rng.integers(1, 4)), replace=False))
        if pick[3] < 0.4
        else None,
        exclude_categories=tuple(rng.choice(categories, 2, replace=False)) if pick[4] < 0.3 else (),
        min_price=low if pick[5] < 0.4 else None,
        max_price=low * float(rng.choice([1.5, 4.0, 20.0])) if pick[6] < 0.4 else None,
    )


@pytest.mark.parametrize("exact_limit", [20_000, 0], ids=["exact", "ann"])
def test_random_filters_never_leak_and_always_fill(make_engine, exact_limit):
    engine = make_engine(exact_scoring_limit=exact_limit, candidates=20, popular_candidates=5)
    rng = np.random.default_rng(7)
    categories = sorted(set(engine.catalogue.category) - {""})
    users = list(rng.choice(engine.user_ids, 40, replace=False)) + ["stranger-1", "stranger-2"]
    for trial in range(120):
        user = str(users[trial % len(users)])
        filters = random_filters(rng, categories)
        k = int(rng.choice([1, 5, 10, 30]))
        answer = engine.recommend(user, k=k, filters=filters)
        eligible = brute_force_eligible(engine, user, filters)
        got = answer.item_ids
        assert len(got) == len(set(got)), "duplicates"
        assert set(got) <= eligible, f"filtered items leaked: {set(got) - eligible}"
        assert len(got) == min(k, len(eligible)), (len(got), k, len(eligible))
        assert answer.model_version == "v-test"
        scores = [row["score"] for row in answer.items]
        assert scores == sorted(scores, reverse=True)


def test_exclude_purchased_and_seen(engine):
    user = buyer(engine)
    bought, history = purchases(engine, user), seen(engine, user)
    k = len(engine.item_ids)
    everything = set(engine.recommend(user, k=k, filters=NO_FILTERS).item_ids)
    assert bought <= everything  # nothing hides them without the filter
    without_bought = engine.recommend(user, k=k, filters=Filters(in_stock=False)).item_ids
    assert not set(without_bought) & bought and set(without_bought) >= everything - bought
    unseen = engine.recommend(user, k=k, filters=Filters(in_stock=False, exclude_seen=True))
    assert not set(unseen.item_ids) & history
    assert len(unseen.items) == len(engine.item_ids) - len(history)


def test_live_purchase_is_excluded_at_once(engine):
    user = buyer(engine)
    top = engine.recommend(user, k=1).item_ids[0]
    event = {"item_id": top, "timestamp": 2e9, "event_type": "purchase"}
    assert top not in engine.recommend(user, k=10, events=[event]).item_ids


def test_stock_category_and_price(engine):
    user = buyer(engine)
    table = engine.bundle.items.set_index("item_id")
    answer = engine.recommend(user, k=20, filters=Filters(in_stock=True))
    assert table.loc[answer.item_ids, "in_stock"].all()
    for row in answer.items:
        assert row["in_stock"] is True and row["category"] and row["price"] is not None
    categories = tuple(table["category"].value_counts().index[:2])
    only = engine.recommend(user, k=20, filters=Filters(categories=categories))
    assert set(table.loc[only.item_ids, "category"]) <= set(categories)
    never = engine.recommend(user, k=20, filters=Filters(exclude_categories=categories))
    assert not set(table.loc[never.item_ids, "category"]) & set(categories)
    priced = engine.recommend(user, k=20, filters=Filters(min_price=10.0, max_price=50.0))
    assert table.loc[priced.item_ids, "price"].between(10.0, 50.0).all()


def test_suppression_of_recent_recommendations(engine):
    user = buyer(engine)
    filters = Filters(suppress_recent=True, in_stock=False)
    first = engine.recommend(user, k=5, filters=filters).item_ids
    second = engine.recommend(user, k=5, filters=filters).item_ids
    assert len(second) == 5 and not set(first) & set(second)
    shown = set(first) | set(second)
    assert set(engine.recommend(user, k=5).item_ids) & shown  # without the filter they return
    engine.recently.ttl = 0.0  # the window has passed
    assert set(engine.recommend(user, k=10, filters=filters).item_ids) & shown


def test_backfill_gives_every_eligible_item_and_no_more(engine):
    user = buyer(engine)
    table = engine.bundle.items.set_index("item_id").reindex(engine.item_ids)
    category = table["category"].value_counts().index[-1]  # the smallest category
    filters = Filters(categories=(category,), in_stock=False, exclude_purchased=False)
    eligible = brute_force_eligible(engine, user, filters)
    answer = engine.recommend(user, k=len(eligible) + 5, filters=filters)
    assert set(answer.item_ids) == eligible and len(answer.items) == len(eligible)
    nothing = engine.recommend(user, k=5, filters=Filters(max_price=0.0))
    assert nothing.items == [] and nothing.model_version == "v-test"


def test_filters_validate_their_arguments():
    with pytest.raises(ValueError, match="min_price"):
        Filters(min_price=-1.0)
    with pytest.raises(ValueError, match="max_price"):
        Filters(max_price="cheap")
    with pytest.raises(ValueError, match="above max_price"):
        Filters(min_price=10.0, max_price=5.0)
    with pytest.raises(ValueError, match="categories must be a list"):
        Filters(categories=3)
    with pytest.raises(ValueError, match="in_stock must be true or false"):
        Filters(in_stock="no")
    with pytest.raises(ValueError, match="unknown filter"):
        Filters.from_dict({"in_stok": True})
    assert Filters(categories="shoes").categories == ("shoes",)  # one name, not its letters
    assert Filters.from_dict({"categories": ["a", "b"], "exclude_categories": None}) == Filters(
        categories=("a", "b")
    )


def test_catalogue_masks_are_cached_and_read_only(engine):
    filters = Filters(min_price=10.0)
    first = engine.catalogue.mask(filters)
    assert engine.catalogue.mask(Filters(min_price=10.0, exclude_seen=True)) is first
    assert not first.mask.flags.writeable and first.count == int(first.mask.sum())
    fresh = engine.catalogue.allowed(filters)
    fresh[:] = False  # a copy: the cache is untouched
    assert engine.catalogue.mask(filters).count == first.count > 0
