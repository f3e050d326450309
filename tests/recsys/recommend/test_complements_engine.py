"""Cross-sell answers complements, similar items stay similar, new items inherit their category's
complements, and a durable purchase moves the next personalised answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import NotFoundError
from tests.recsys.recommend.conftest import NO_FILTERS


def category_of(engine) -> pd.Series:
    return engine.bundle.items.set_index("item_id")["category"].reindex(engine.item_ids)


def anchor(engine) -> str:
    """The most bought item of the most rarely re-bought category."""
    comp = engine.complements
    durable = int(np.argmax(comp.durability))
    items = np.flatnonzero(comp.category == durable)
    return str(engine.item_ids[items[np.argmax(comp.mass[items])]])


def test_cross_sell_differs_from_similar_items(engine):
    item = anchor(engine)
    similar = engine.similar_items(item, k=10, filters=NO_FILTERS)
    cross = engine.cross_sell([item], k=10, filters=NO_FILTERS)
    assert cross.strategy == "cross-sell" and len(cross.item_ids) == 10
    assert cross.item_ids != similar.item_ids
    categories = category_of(engine)
    own = categories[item]
    same_cross = np.mean([categories[i] == own for i in cross.item_ids])
    same_similar = np.mean([categories[i] == own for i in similar.item_ids])
    assert same_cross < same_similar and same_cross <= 0.5


def test_a_new_item_of_a_known_category_gets_its_categorys_complements(engine):
    item = anchor(engine)
    own = category_of(engine)[item]
    with pytest.raises(NotFoundError, match="none of the basket items is known"):
        engine.cross_sell(["brand-new"], k=10, filters=NO_FILTERS)
    hinted = engine.cross_sell(["brand-new"], k=10, filters=NO_FILTERS,
                               categories={"brand-new": own})  # fmt: skip
    assert hinted.meta["unknown_items"] == ["brand-new"] and len(hinted.item_ids) == 10
    code = engine.complements.category_code(own)
    expected = engine.complements.scores([], [code])
    top = [str(engine.item_ids[i]) for i in np.argsort(-expected, kind="stable")[:10]]
    assert hinted.item_ids == top
    # a category the model never saw gives nothing to go on: still unknown
    with pytest.raises(NotFoundError):
        engine.cross_sell(["brand-new"], k=10, categories={"brand-new": "no such category"})


def test_a_durable_purchase_moves_the_next_answer_to_its_complements(engine):
    item = anchor(engine)
    own = category_of(engine)[item]
    user = str(engine.user_ids[0])
    bought = [{"item_id": item, "timestamp": 2e9, "event_type": "purchase"}]
    viewed = [{"item_id": item, "timestamp": 2e9, "event_type": "view"}]
    after_view = engine.recommend(user, k=10, events=viewed, filters=NO_FILTERS)
    after_purchase = engine.recommend(user, k=10, events=bought, filters=NO_FILTERS)
    categories = category_of(engine)
    share = [np.mean([categories[i] == own for i in a.item_ids]) for a in (after_view,
                                                                       after_purchase)]  # fmt: skip
    assert share[1] < share[0] or share[1] == 0.0
    complements = set(engine.cross_sell([item], k=10, filters=NO_FILTERS).item_ids)
    assert len(complements & set(after_purchase.item_ids)) >= 3


def test_an_add_to_cart_moves_the_answer_in_the_same_request(engine):
    user = str(engine.user_ids[1])
    categories = category_of(engine)
    before = engine.recommend(user, k=10, filters=NO_FILTERS)
    outside = [i for i in engine.item_ids if categories[i] not in set(categories[before.item_ids])]
    item = outside[0]
    cart = [{"item_id": item, "timestamp": 2e9, "event_type": "add_to_cart"}]
    after = engine.recommend(user, k=10, events=cart, filters=NO_FILTERS)
    assert any(categories[i] == categories[item] for i in after.item_ids)
