"""The cross-sell route's category hint: an item the model does not know yet, named with its
category, gets what goes with that category."""

from __future__ import annotations

from recsys.recommend import Filters
from tests.utils.http import auth

CROSS_SELL = "/v1/recommendations/cross-sell"


def test_unknown_item_with_its_category_gets_the_category_complements(client, keys, server):
    engine = server.engine
    category = str(engine.catalogue.category[0])
    hint = {"brand-new-item": category}
    body = {"items": ["brand-new-item"], "categories": hint, "k": 5, "in_stock": False}
    answer = client.post(CROSS_SELL, json=body, headers=auth(keys["read"]))
    assert answer.status_code == 200, answer.text
    returned = [r["item_id"] for r in answer.json()["items"]]
    expected = engine.cross_sell(["brand-new-item"], k=5, categories=hint,
                                 filters=Filters(in_stock=False)).item_ids  # fmt: skip
    assert returned == list(expected) and len(returned) == 5
    without = client.post(CROSS_SELL, json={"items": ["brand-new-item"]},
                          headers=auth(keys["read"]))  # fmt: skip
    assert without.status_code == 404


def test_a_bad_category_hint_is_a_422_naming_the_field(client, keys):
    body = {"items": ["x"], "categories": {"x": 3}}
    answer = client.post(CROSS_SELL, json=body, headers=auth(keys["read"]))
    assert answer.status_code == 422
    assert any("categories" in str(problem) for problem in answer.json()["detail"])
