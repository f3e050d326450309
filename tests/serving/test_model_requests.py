"""One request path: typed requests through ModelServer.answer and the model clients; a bad
request in a batch fails only itself; errors cross the process boundary as their kind; filters,
categories, max_k and item ids with '/' over HTTP. (Through a real @serve.batch:
tests/serving/test_ray_serve.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recsys.bundle import load_bundle, save_bundle
from recsys.errors import InvalidInputError, NotFoundError, RecsysError
from recsys.recommend import (
    CategoriesRequest,
    CrossSellRequest,
    Filters,
    RecommendRequest,
    SimilarRequest,
)
from serving.app import create_app
from serving.failure import Failure
from serving.model_client import LocalModelClient
from serving.model_server import ModelServer
from tests.utils.http import auth

ANY = Filters(exclude_purchased=False, in_stock=False)


def _mixed(server):
    """Good and bad requests interleaved; the indices of the good ones."""
    engine = server.engine
    user, item = str(engine.user_ids[0]), str(engine.item_ids[0])
    requests = [
        RecommendRequest(user, k=5, filters=ANY),
        RecommendRequest(user, k=0),  # bad k
        SimilarRequest(item, k=4, filters=ANY),
        SimilarRequest("no-such-item"),  # unknown item
        RecommendRequest("visitor", k=3, filters=Filters(categories=("no such category",))),
        CrossSellRequest([item], k=3, filters=ANY),
        RecommendRequest("visitor", k=6, filters=ANY),
        CategoriesRequest(),
    ]
    return requests, [0, 2, 5, 6, 7]


def test_a_bad_request_fails_only_itself_on_the_model_server(server, settings):
    requests, good = _mixed(server)
    answers = server.answer(requests)
    alone = ModelServer(settings).answer([requests[i] for i in good])
    assert [answers[i] for i in good] == alone
    assert [len(a["items"]) for a in alone[:4]] == [5, 4, 3, 6]
    assert alone[4]["categories"] and all(isinstance(a, dict) for a in alone)
    assert answers[1] == Failure("InvalidInputError", "k must be a positive integer, got 0")
    assert answers[3] == Failure("NotFoundError", "unknown item 'no-such-item'")
    assert answers[4].kind == "InvalidInputError" and "no such category" in answers[4].detail


def test_failures_cross_the_process_boundary_as_their_kind():
    from recsys.data.errors import DataValidationError
    from recsys.recommend import UnknownItemError

    for error, kind in [
        (UnknownItemError("unknown item 'x'"), NotFoundError),
        (DataValidationError("<request>", "bad", column="k"), InvalidInputError),
        (RecsysError("kind-less"), RecsysError),
    ]:
        failure = pickle.loads(pickle.dumps(Failure.of(error)))  # what Ray does with it
        again = failure.error()
        assert type(again) is kind and str(again) == str(error)


def test_the_local_client_raises_the_kind(server):
    client = LocalModelClient(server)
    with pytest.raises(NotFoundError, match="unknown item 'nope'"):
        asyncio.run(client.answer(SimilarRequest("nope")))
    answer = asyncio.run(client.answer(SimilarRequest(str(server.engine.item_ids[0]), k=2)))
    assert len(answer["items"]) == 2


# ---------------------------------------------------------------------------------- routes
def test_categories_route_lists_categories_with_counts(client, keys, server):
    response = client.get("/v1/categories", headers=auth(keys["read"]))
    assert response.status_code == 200
    body = response.json()
    expected = server.engine.catalogue.categories()
    assert [(r["category"], r["items"]) for r in body["categories"]] == expected
    assert sum(r["items"] for r in body["categories"]) == len(server.engine.item_ids)
    assert body["model_version"] == server.info()["version"]
    assert client.get("/v1/categories", headers=auth(keys["ingest"])).status_code == 403
    assert client.get("/v1/categories").status_code == 401


def test_category_filters_ignore_case_over_http(client, keys, server):
    user = str(server.engine.user_ids[0])
    name = server.engine.catalogue.categories()[0][0]
    answers = [
        client.get(
            f"/v1/users/{user}/recommendations?k=5&category={spelling}&in_stock=false",
            headers=auth(keys["read"]),
        ).json()["items"]
        for spelling in (name, name.upper(), name.lower())
    ]
    assert answers[0] and answers[0] == answers[1] == answers[2]
    assert {row["category"] for row in answers[0]} == {name}


def test_unknown_category_is_422_naming_close_matches(client, keys, server):
    user, item = str(server.engine.user_ids[0]), str(server.engine.item_ids[0])
    name = server.engine.catalogue.categories()[0][0]
    typo = name[:-1].upper()
    for response in (
        client.get(f"/v1/users/{user}/recommendations?category={typo}", headers=auth(keys["read"])),
        client.get(f"/v1/items/{item}/similar?exclude_category={typo}", headers=auth(keys["read"])),
        client.post(
            "/v1/recommendations/cross-sell",
            json={"items": [item], "category": [typo]},
            headers=auth(keys["read"]),
        ),
    ):
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert f"unknown category '{typo}'" in detail and f"close matches: {name}" in detail


def test_unknown_query_parameters_are_422_naming_close_matches(client, keys, server):
    user = str(server.engine.user_ids[0])
    url = f"/v1/users/{user}/recommendations?k=3&categroy=x&colour=red"
    response = client.get(url, headers=auth(keys["read"]))
    assert response.status_code == 422
    problems = {p["field"]: p["problem"] for p in response.json()["detail"]}
    assert set(problems) == {"query.categroy", "query.colour"}
    assert "did you mean category" in problems["query.categroy"]
    assert (
        "this route takes" in problems["query.colour"]
        and "exclude_seen" in problems["query.colour"]
    )
    cross = client.post(
        "/v1/recommendations/cross-sell?k=3", json={"items": ["x"]}, headers=auth(keys["read"])
    )
    assert (
        cross.status_code == 422 and "no query parameters" in cross.json()["detail"][0]["problem"]
    )
    assert client.get(url).status_code == 401  # the key is checked first


def test_max_k_setting_limits_k(settings, store, server, keys):
    narrow = settings.model_copy(update={"max_k": 20})
    with TestClient(create_app(narrow, store, LocalModelClient(server))) as client:
        user, item = str(server.engine.user_ids[0]), str(server.engine.item_ids[0])
        ok = client.get(f"/v1/users/{user}/recommendations?k=20", headers=auth(keys["read"]))
        assert ok.status_code == 200 and len(ok.json()["items"]) == 20
        for response, field in [
            (client.get(f"/v1/users/{user}/recommendations?k=21", headers=auth(keys["read"])),
             "query.k"),
            (client.get(f"/v1/items/{item}/similar?k=21", headers=auth(keys["read"])), "query.k"),
            (client.post("/v1/recommendations/cross-sell", json={"items": [item], "k": 21},
                         headers=auth(keys["read"])), "body.k"),
        ]:  # fmt: skip
            assert response.status_code == 422
            (problem,) = response.json()["detail"]
            assert problem["field"] == field and "at most 20" in problem["problem"]
        spec = client.get("/openapi.json").json()
        route = spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]
        (k,) = [p for p in route["parameters"] if p["name"] == "k"]
        assert k["schema"]["maximum"] == 20
        assert spec["components"]["schemas"]["CrossSellIn"]["properties"]["k"]["maximum"] == 20


@pytest.fixture(scope="module")
def slash_bundle(bundle_dir, tmp_path_factory):
    """The test bundle with every item id under a 'shelf/' prefix."""
    bundle = load_bundle(bundle_dir, mmap=False)
    ids = np.asarray([f"shelf/{i}" for i in bundle.item_ids], dtype=object)
    items = bundle.items.assign(item_id=ids.astype(str))
    renamed = dataclasses.replace(bundle, item_ids=ids, items=items)
    return save_bundle(renamed, tmp_path_factory.mktemp("slash") / "bundle")


def test_item_ids_with_a_slash_are_queryable(settings, store, keys, slash_bundle):
    slashed = settings.model_copy(update={"model_uri": str(slash_bundle)})
    server = ModelServer(slashed)
    with TestClient(create_app(slashed, store, LocalModelClient(server))) as client:
        item = str(server.engine.item_ids[0])
        response = client.get(f"/v1/items/{item}/similar?k=3", headers=auth(keys["read"]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["item_id"] == item and len(body["items"]) == 3
        assert all(row["item_id"].startswith("shelf/") for row in body["items"])
        escaped = item.replace("/", "%2F")
        again = client.get(f"/v1/items/{escaped}/similar?k=3", headers=auth(keys["read"]))
        assert again.json() == body
        missing = client.get("/v1/items/shelf/none/similar", headers=auth(keys["read"]))
        assert missing.status_code == 404 and "shelf/none" in missing.json()["detail"]
        spec = client.get("/openapi.json").json()
        assert "/v1/items/{item_id}/similar" in spec["paths"]


def test_a_request_whose_replica_died_is_unavailable_not_an_error():
    """Ray raises RayActorError to the caller when the replica holding the request dies (its
    node lost): the client turns it into a retryable UnavailableError (503 with Retry-After)."""
    import asyncio
    from types import SimpleNamespace

    from ray.exceptions import RayActorError

    from recsys.errors import UnavailableError
    from recsys.recommend import RecommendRequest
    from serving.model_client import RayModelClient

    async def died(request):
        raise RayActorError()

    handle = SimpleNamespace(answer=SimpleNamespace(remote=died))
    with pytest.raises(UnavailableError, match="went away"):
        asyncio.run(RayModelClient(handle).answer(RecommendRequest("u1", 5)))
