"""One dispatch over typed requests: mixed batches, per-request errors, categories and their
case-insensitive filters."""

from __future__ import annotations

import pytest

from recsys.errors import InvalidInputError, NotFoundError
from recsys.recommend import (
    Answer,
    CategoriesRequest,
    CrossSellRequest,
    Filters,
    RecommendRequest,
    SimilarRequest,
    UnknownCategoryError,
    UnknownItemError,
)

from .conftest import NO_FILTERS, buyer


def test_a_bad_request_fails_only_itself_in_a_batch(make_engine):
    engine = make_engine()
    user, item = buyer(engine), str(engine.item_ids[0])
    good = [
        RecommendRequest(user, k=5, filters=NO_FILTERS),
        SimilarRequest(item, k=4, filters=NO_FILTERS),
        CrossSellRequest([item], k=3, filters=NO_FILTERS),
        RecommendRequest("nobody", k=6, filters=NO_FILTERS),
    ]
    bad = [
        RecommendRequest(user, k=0),
        RecommendRequest(user, k=5, filters=Filters(categories=("no such category",))),
        SimilarRequest("no-such-item"),
        SimilarRequest(item, k=-1),
        CrossSellRequest(["ghost"]),
        CrossSellRequest([], k=3),
    ]
    mixed = [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3], bad[4], good[3], bad[5]]
    answers = engine.answer_many(mixed)
    alone = make_engine().answer_many(good)  # a fresh engine: no suppression memory shared
    assert [answers[i] for i in (0, 2, 5, 8)] == alone
    assert all(isinstance(a, Answer) for a in alone)
    assert [len(a.items) for a in alone] == [5, 4, 3, 6]
    errors = [answers[i] for i in (1, 3, 4, 6, 7, 9)]
    kinds = [InvalidInputError, UnknownCategoryError, UnknownItemError, InvalidInputError,
             NotFoundError, InvalidInputError]  # fmt: skip
    for error, kind in zip(errors, kinds, strict=True):
        assert isinstance(error, kind), error
    assert "k must be a positive integer, got 0" in str(errors[0])
    assert "no-such-item" in str(errors[2])


def test_recommend_many_still_raises_for_a_bad_request(engine):
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        engine.recommend_many([RecommendRequest("u"), RecommendRequest("u", k=0)])


def test_each_request_names_the_engine_method_that_answers_it(engine):
    item = str(engine.item_ids[3])
    request = SimilarRequest(item, k=7, filters=NO_FILTERS)
    assert engine.answer_many([request]) == [engine.similar_items(item, 7, NO_FILTERS)]
    assert request.arguments() == {"item_id": item, "k": 7, "filters": NO_FILTERS}
    with pytest.raises(TypeError, match="not a recommendation request"):
        engine.answer_many([{"item_id": item}])


def test_categories_list_every_category_with_its_item_count(engine):
    (listing,) = engine.answer_many([CategoriesRequest()])
    table = engine.bundle.items.set_index("item_id").reindex(engine.item_ids)
    expected = table["category"].dropna().value_counts()
    assert listing["model_version"] == "v-test"
    assert {row["category"]: row["items"] for row in listing["categories"]} == dict(expected)
    names = [row["category"] for row in listing["categories"]]
    assert names == sorted(names, key=str.casefold)


def test_category_filters_ignore_case(engine):
    user = buyer(engine)
    name = engine.catalogue.categories()[0][0]
    exact = engine.recommend(user, k=10, filters=Filters(categories=(name,)))
    for spelling in (name.upper(), name.lower(), name.swapcase()):
        answer = engine.recommend(user, k=10, filters=Filters(categories=(spelling,)))
        assert answer.item_ids == exact.item_ids and answer.items
        assert {row["category"] for row in answer.items} == {name}
    never = engine.recommend(user, k=20, filters=Filters(exclude_categories=(name.upper(),)))
    assert name not in {row["category"] for row in never.items}


def test_an_unknown_category_names_close_matches(engine):
    name = engine.catalogue.categories()[0][0]
    typo = name[:-1].upper()
    with pytest.raises(UnknownCategoryError, match=f"unknown category '{typo}'") as caught:
        engine.recommend("u", filters=Filters(categories=(typo,)))
    assert f"close matches: {name}" in str(caught.value) and "categories" in str(caught.value)
    with pytest.raises(UnknownCategoryError, match="exclude_categories: .*none close"):
        engine.similar_items(str(engine.item_ids[0]), filters=Filters(exclude_categories=["?"]))
    with pytest.raises(UnknownCategoryError, match="unknown category ''"):
        engine.recommend("u", filters=Filters(categories=("",)))
