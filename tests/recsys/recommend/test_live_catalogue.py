"""Catalogue changes applied to a running engine: filters follow them, new items are served."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsys.errors import InvalidInputError
from recsys.recommend import Filters, RecommendationEngine
from recsys.recommend.new_items import PROXIES
from tests.recsys.recommend.conftest import NO_FILTERS


def _ids(answer) -> list[str]:
    return [row["item_id"] for row in answer.items]


def _popular_category(engine) -> str:
    """The category with the largest summed popularity prior."""
    totals: dict[str, float] = {}
    for category, prior in zip(engine.catalogue.category, engine.prior, strict=True):
        totals[str(category)] = totals.get(str(category), 0.0) + float(prior)
    return max(totals, key=totals.get)


def _category_users(engine, category: str, share: float = 0.5) -> list[str]:
    """Known users with at least ``share`` of their stored events in ``category``."""
    out = []
    for user in engine.user_ids:
        items = np.asarray(engine.scorer.user_state(engine.user_index(user)).items)
        if len(items) and np.mean(engine.catalogue.category[items] == category) >= share:
            out.append(str(user))
    return out


def test_stock_price_category_and_active_changes_reach_the_next_answer(engine):
    user = str(engine.example_user())
    first = _ids(engine.recommend(user, k=10))
    gone, dearer, moved, deleted = first[:4]
    result = engine.apply_catalogue([
        {"item_id": gone, "in_stock": False},
        {"item_id": dearer, "price": 1e6},
        {"item_id": moved, "category": "Clearance"},
        {"item_id": deleted, "active": False},
    ])  # fmt: skip
    assert result == {"updated": 4, "added": 0}
    after = _ids(engine.recommend(user, k=10))
    assert gone not in after and deleted not in after and len(after) == 10
    cheap = _ids(engine.recommend(user, k=10, filters=Filters(max_price=1e5)))
    assert dearer not in cheap
    assert _ids(engine.recommend(user, k=5, filters=Filters(categories=("clearance",)))) == [moved]
    # deleted items pass no filter at all, out-of-stock ones only when stock is not asked for
    anything = _ids(engine.recommend(user, k=len(engine.item_ids), filters=NO_FILTERS))
    assert deleted not in anything and gone in anything
    assert ("Clearance", 1) in engine.catalogue.categories()
    engine.apply_catalogue([{"item_id": gone, "in_stock": True}])
    assert gone in _ids(engine.recommend(user, k=len(engine.item_ids), filters=Filters()))


def test_a_new_item_of_a_popular_category_is_recommended_before_retraining(engine):
    category = _popular_category(engine)
    members = np.flatnonzero(engine.catalogue.category == category)
    price = float(np.nanmedian(engine.catalogue.price[members]))
    item = {"item_id": "new-1", "title": "New", "category": category, "price": price}
    assert engine.apply_catalogue([item]) == {"updated": 0, "added": 1}
    position = engine.item_index("new-1")
    assert position == engine.n_trained and len(engine.item_ids) == engine.n_trained + 1
    assert len(engine.prior) == len(engine.catalogue) == len(engine.item_ids)
    assert engine.index.contains(position)
    similar = [_ids(engine.similar_items(str(engine.item_ids[m]), k=10)) for m in members]
    assert np.mean(["new-1" in ids for ids in similar]) >= 0.5
    users = _category_users(engine, category)
    assert users, "the test shop has no user devoted to its most popular category"
    answers = [_ids(engine.recommend(u, k=10)) for u in users]
    assert np.mean(["new-1" in ids for ids in answers]) >= 0.3
    described = next(r for r in engine.similar_items(str(engine.item_ids[members[0]]), k=10).items
                     if r["item_id"] == "new-1")  # fmt: skip
    assert described["category"] == category and described["title"] == "New"
    # the new item answers questions about itself too
    assert set(_ids(engine.similar_items("new-1", k=3))) <= set(engine.item_ids[members])
    assert engine.cross_sell(["new-1"], k=3).items
    # out of stock, it goes like any other item
    engine.apply_catalogue([{"item_id": "new-1", "in_stock": False}])
    assert not any("new-1" in _ids(engine.recommend(u, k=10)) for u in users)


def test_new_item_vectors_come_from_the_item_tower(engine):
    category = str(engine.catalogue.category[0])
    engine.apply_catalogue([{"item_id": "cheap", "category": category, "price": 0.01},
                            {"item_id": "dear", "category": category, "price": 1e5}])  # fmt: skip
    content = engine.item_content()
    assert [name for name, _, _ in content.features] == ["category", "price"]
    cheap, dear = engine.new_items.vectors
    assert not np.allclose(cheap, dear)  # the price bucket counts
    assert engine.new_items.proxies.shape == (2, PROXIES)
    assert (engine.catalogue.category[engine.new_items.proxies] == category).all()


def test_old_bundles_without_feature_tables_use_the_category_mean(bundle):
    arrays = {k: v for k, v in bundle.arrays.items() if not k.startswith("tower_")}
    config = {k: v for k, v in bundle.config.items() if k != "item_tower"}
    old = dataclasses.replace(bundle, arrays=arrays, config=config)
    engine = RecommendationEngine(old, device="cpu", index_kind="flat")
    category = str(engine.catalogue.category[0])
    engine.apply_catalogue([{"item_id": "n", "category": category.upper(), "price": 3.0}])
    members = engine.catalogue.category[: engine.n_trained] == category
    expected = engine.requests.item_vectors[members].mean(axis=0)
    np.testing.assert_allclose(engine.new_items.vectors[0], expected, rtol=1e-5, atol=1e-6)


def test_unknown_category_and_repeated_changes(engine):
    engine.apply_catalogue([{"item_id": "odd", "category": "never seen", "price": 5.0}])
    engine.apply_catalogue([{"item_id": "odd", "price": 6.0}, {"item_id": "odd", "price": 7.0}])
    assert len(engine.new_items) == 1 and engine.catalogue.price[engine.item_index("odd")] == 7.0
    assert engine.catalogue.category[engine.item_index("odd")] == "never seen"
    user = str(engine.example_user())
    filters = Filters(categories=("never seen",), exclude_purchased=False)
    assert _ids(engine.recommend(user, k=3, filters=filters)) == ["odd"]
    assert engine.apply_catalogue([]) == {"updated": 0, "added": 0}
    with pytest.raises(InvalidInputError, match="item_id"):
        engine.apply_catalogue([{"price": 3.0}])
