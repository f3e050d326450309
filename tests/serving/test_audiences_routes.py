"""Affinity and lookalike audiences on the real app over a real bundle: exact scores, roles,
errors by field, saving as a static segment, seeds left out, erased customers never returned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.bundle import load_bundle
from recsys.models.blend import BlendScorer
from tests.utils.http import auth


def _model(bundle_dir):
    bundle = load_bundle(bundle_dir)
    return bundle, BlendScorer.from_arrays(bundle.arrays, bundle.config, device="cpu")


def test_affinity_is_the_models_top_users_for_the_item(client, keys, bundle_dir):
    bundle, scorer = _model(bundle_dir)
    item = str(bundle.item_ids[3])
    body = {"item_id": item, "n": 10}
    assert (
        client.post("/v1/audiences/affinity", json=body, headers=auth(keys["read"])).status_code
        == 403
    )
    answer = client.post("/v1/audiences/affinity", json=body, headers=auth(keys["marketer"]))
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["model_version"] and found["segment"] is None
    with torch.no_grad():
        scores = scorer.retrieval_scores(torch.arange(scorer.n_users))[:, 3].numpy()
    best = np.argsort(-scores)[:10]
    assert [m["user_id"] for m in found["members"]] == [str(bundle.user_ids[i]) for i in best]
    np.testing.assert_allclose(
        [m["score"] for m in found["members"]], scores[best], rtol=1e-4, atol=1e-5
    )


def test_affinity_errors_name_the_field(client, keys, bundle_dir):
    headers = auth(keys["marketer"])
    both = client.post(
        "/v1/audiences/affinity", json={"item_id": "x", "category": "y"}, headers=headers
    )
    assert both.status_code == 422 and "exactly one of item_id and category" in both.text
    unknown = client.post("/v1/audiences/affinity", json={"item_id": "nope"}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("item_id: ")
    missing = client.post("/v1/audiences/affinity", json={"category": "nope"}, headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("category: ")
    too_many = client.post(
        "/v1/audiences/affinity", json={"category": "x", "n": 0}, headers=headers
    )
    assert too_many.status_code == 422


def test_save_then_lookalike_of_the_saved_audience(client, keys, bundle_dir):
    bundle, _ = _model(bundle_dir)
    category = str(bundle.items["category"].dropna().iloc[0])
    headers = auth(keys["marketer"])
    body = {"category": category, "n": 15, "save": {"name": "Likely buyers", "id": "likely"}}
    saved = client.post("/v1/audiences/affinity", json=body, headers=headers).json()
    assert saved["segment"]["id"] == "likely" and saved["segment"]["kind"] == "static"
    assert saved["segment"]["size"] == 15
    scores = [m["score"] for m in saved["members"]]
    assert scores == sorted(scores, reverse=True)
    page = client.get("/v1/segments/likely/members?limit=100", headers=headers).json()["members"]
    by_user = {m["user_id"]: m["score"] for m in page}
    assert by_user == pytest.approx({m["user_id"]: m["score"] for m in saved["members"]}, rel=1e-5)
    again = client.post("/v1/audiences/affinity", json=body, headers=headers)
    assert again.status_code == 409

    body = {"segment_id": "likely", "n": 20, "save": {"name": "Lookalikes", "id": "alike"}}
    alike = client.post("/v1/audiences/lookalike", json=body, headers=headers)
    assert alike.status_code == 200, alike.text
    members = [m["user_id"] for m in alike.json()["members"]]
    assert len(members) == 20 and not set(members) & set(by_user)
    scores = [m["score"] for m in alike.json()["members"]]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0 + 1e-5
    assert alike.json()["segment"]["size"] == 20
    nowhere = client.post(
        "/v1/audiences/lookalike", json={"segment_id": "nowhere"}, headers=headers
    )
    assert nowhere.status_code == 404


def test_erased_customers_are_never_in_an_audience(client, keys, bundle_dir):
    bundle, _ = _model(bundle_dir)
    body = {"item_id": str(bundle.item_ids[0]), "n": 5}
    headers = auth(keys["marketer"])
    first = client.post("/v1/audiences/affinity", json=body, headers=headers).json()["members"]
    top = first[0]["user_id"]
    erased = client.delete(f"/v1/users/{top}", headers=auth(keys["admin"]))
    assert erased.status_code == 200, erased.text
    after = client.post("/v1/audiences/affinity", json=body, headers=headers).json()["members"]
    assert top not in [m["user_id"] for m in after]
    assert [m["user_id"] for m in after[:4]] == [m["user_id"] for m in first[1:5]]
