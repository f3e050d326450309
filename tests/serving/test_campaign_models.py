"""Champion vs challenger arms over a real MLflow registry: each arm's sends carry the items its
own registered version answers; an unknown alias or version is refused when the campaign is
saved; a version that cannot be loaded at send time fails those sends, never another model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from recsys.campaigns.recommend import OVERFETCH
from recsys.campaigns.service import CampaignService
from recsys.campaigns.settings import campaign_settings
from recsys.recommend import Filters, RecommendRequest
from recsys.registry import CHALLENGER, CHAMPION, Registry
from recsys.store import read_session
from recsys.store.campaigns import SendRow
from serving.app import create_app
from serving.model_client import LocalModelClient
from serving.model_server import ModelServer
from serving.worker import build_worker
from tests.utils.factories import make_bundle
from tests.utils.http import auth

SECRET = "models-secret-" + "x" * 20
K = 3
TEMPLATE = {"subject": "For you", "text": "{% for r in recommendations %}{{ r.item_id }}\n"
            "{% endfor %}{{ unsubscribe_url }}"}  # fmt: skip


def ab(champion: str = CHAMPION, challenger: str = CHALLENGER) -> dict:
    """Two arms of one API-triggered campaign, each sending with its own model."""

    def send(model):
        return {"type": "send", "channel": "email", "template": "ab",
                "recommendations": {"k": K, "model": model, "exclude_sent_days": 0}}  # fmt: skip

    return {
        "name": "Champion vs challenger",
        "trigger": {"type": "api"},
        "start": "split",
        "steps": {
            "split": {"type": "split", "arms": [
                {"name": "champion", "weight": 1, "next": "mail_champion"},
                {"name": "challenger", "weight": 1, "next": "mail_challenger"}]},
            "mail_champion": send(champion),
            "mail_challenger": send(challenger),
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def other_bundle(shop_dir, tmp_path_factory):
    """A second model of the same shop (smaller, fewer epochs): different answers."""
    return make_bundle(shop_dir, tmp_path_factory.mktemp("bundle-b") / "bundle", dim=8, epochs=1)


@pytest.fixture
def registry_settings(settings, tmp_path, bundle_dir, other_bundle, monkeypatch):
    """v1 (champion, served) and v2 (challenger) registered in a SQLite MLflow registry."""
    monkeypatch.setenv("RECSYS_CAMPAIGN_SECRET", SECRET)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = Registry(tracking, artifact_root=str(tmp_path / "artifacts"))
    for bundle, alias in ((bundle_dir, CHAMPION), (other_bundle, CHALLENGER)):
        with registry.run(run_name=alias):
            version = registry.log_bundle(bundle).registered_model_version
        registry.set_alias(alias, version)
    served = settings.model_copy(update={
        "model_uri": "models:/recsys@champion", "mlflow_tracking_uri": tracking,
        "model_poll_seconds": 0.0,
    })  # fmt: skip
    return served, registry


def _sends(store, campaign_id: str) -> list[tuple]:
    with read_session(store.engine) as s:
        stmt = select(SendRow.user_id, SendRow.arm, SendRow.status, SendRow.reason, SendRow.items)
        return list(s.execute(stmt.where(SendRow.campaign_id == campaign_id)))


def _expected(server: ModelServer, user: str) -> list[str]:
    """What the version behind ``server`` answers for a send to ``user`` (no purchases, no
    earlier sends, no cart: the campaign filters drop nothing)."""
    request = RecommendRequest(user, K * OVERFETCH, filters=Filters(in_stock=True))
    (answer,) = server.answer([request])
    return [item["item_id"] for item in answer["items"]][:K]


def _enrol_and_send(client, marketer, settings, store, campaign_ids, users):
    """Give ``users`` e-mail consent, trigger them into each campaign and run one worker pass
    a minute later; returns the worker."""
    for user in users:
        store.customers.put(user, {"email": f"{user}@example.com", "consents": {"email": True}})
    for campaign_id in campaign_ids:
        response = client.post(f"/v1/campaigns/{campaign_id}/trigger",
                               json={"user_ids": users}, headers=marketer)  # fmt: skip
        assert response.json()["enrolled"] == len(users)
    now = datetime.now(UTC) + timedelta(minutes=1)
    worker = build_worker(
        settings,
        store,
        clock=lambda: now,
        channels={},
        lag_s=0,
        settings=campaign_settings(campaign_secret=SECRET, frequency_cap=9),
    )
    worker.run_once()
    return worker


def test_each_arm_gets_its_own_model_version(registry_settings, store, keys, tmp_path):
    settings, registry = registry_settings
    champion = ModelServer(settings, store.erased_hashes)
    app = create_app(settings, store, LocalModelClient(champion))
    marketer = auth(keys["marketer"])
    with TestClient(app) as client:
        assert client.put("/v1/templates/ab", json=TEMPLATE, headers=marketer).status_code == 200
        for field, value, problem in (
            ("mail_challenger", "nope", "registered model 'recsys' has no alias 'nope'"),
            ("mail_champion", "9", "registered model 'recsys' has no version '9'"),
        ):
            models = {"champion": CHAMPION, "challenger": CHALLENGER}
            models["challenger" if field == "mail_challenger" else "champion"] = value
            response = client.post("/v1/campaigns", json={"id": "ab", "definition": ab(**models)},
                                   headers=marketer)  # fmt: skip
            assert response.status_code == 422, response.text
            assert response.json()["detail"] == [
                {"field": f"definition.steps.{field}.recommendations.model", "problem": problem}
            ]
        for campaign_id, definition in (("ab", ab()), ("by-version", ab("1", "2"))):
            response = client.post("/v1/campaigns", headers=marketer, json={
                "id": campaign_id, "status": "active", "definition": definition})  # fmt: skip
            assert response.status_code == 201, response.text
        users = [str(u) for u in champion.engine.user_ids[:40]]
        worker = _enrol_and_send(client, marketer, settings, store, ("ab", "by-version"), users)
        report = client.get("/v1/campaigns/ab/report", headers=auth(keys["read"])).json()

    challenger = ModelServer(settings.model_copy(update={"model_uri": "models:/recsys/2"}),
                             store.erased_hashes)  # fmt: skip
    engines = {"champion": champion, "challenger": challenger}
    differ: dict[tuple[str, str], int] = {}  # sends the other version would have changed
    for campaign_id in ("ab", "by-version"):
        sends = _sends(store, campaign_id)
        assert len(sends) == len(users) and {arm for _, arm, *_ in sends} == set(engines)
        for user, arm, status, reason, items in sends:
            assert status == "sent" and reason is None
            assert items == _expected(engines[arm], user), (campaign_id, user, arm)
            other = "challenger" if arm == "champion" else "champion"
            key = (campaign_id, arm)
            differ[key] = differ.get(key, 0) + (items != _expected(engines[other], user))
    assert len(differ) == 4 and all(differ.values()), differ  # the versions do answer apart
    assert sum(differ.values()) >= len(users) // 2, differ
    assert {a["arm"]: a["sends"] for a in report["arms"]} == {
        arm: sum(1 for _, a, *_ in _sends(store, "ab") if a == arm) for arm in engines
    }
    # "champion" is the served URI (its engine is reused); the others were loaded by the worker
    assert set(worker.recommenders._cache) == {"challenger", "1", "2"}
    CampaignService(store).set_status("ab", "archived")
    worker.reload()  # a model no active campaign names any more is dropped
    assert set(worker.recommenders._cache) == {"1", "2"}


def test_a_model_that_cannot_be_loaded_fails_its_sends(registry_settings, store, keys):
    settings, registry = registry_settings
    registry.set_alias("retired", 2)
    champion = ModelServer(settings, store.erased_hashes)
    app = create_app(settings, store, LocalModelClient(champion))
    marketer = auth(keys["marketer"])
    with TestClient(app) as client:
        client.put("/v1/templates/ab", json=TEMPLATE, headers=marketer)
        response = client.post("/v1/campaigns", headers=marketer, json={
            "id": "gone", "status": "active", "definition": ab(challenger="retired")})  # fmt: skip
        assert response.status_code == 201, response.text
        registry.client.delete_registered_model_alias("recsys", "retired")
        users = [str(u) for u in champion.engine.user_ids[:20]]
        _enrol_and_send(client, marketer, settings, store, ("gone",), users)
        report = client.get("/v1/campaigns/gone/report", headers=auth(keys["read"])).json()
    sends = _sends(store, "gone")
    failed = [s for s in sends if s.arm == "challenger"]
    assert failed and all(s.status == "failed" and not s.items for s in failed)
    assert all("model 'retired' cannot be loaded" in s.reason for s in failed)
    assert all(s.status == "sent" and s.items for s in sends if s.arm == "champion")
    arms = {a["arm"]: a for a in report["arms"]}
    assert arms["challenger"]["failed"] == len(failed) and arms["champion"]["failed"] == 0
