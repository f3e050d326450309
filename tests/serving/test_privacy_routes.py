"""Data rights end to end on the real app: erasure reaches every registered model version and
the local bundle caches (a byte grep of every file finds nothing), export, receipts with
pending scrubs, per-key rate limits (429 + Retry-After, counted in /metrics)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recsys.bundle import load_bundle
from recsys.data.frame import pd
from recsys.privacy import DerivedDataScrubber
from recsys.registry import CHAMPION, Registry
from recsys.store import Role, Store
from recsys.store.key_rates import KeyRateStore
from serving.app import create_app
from serving.model_client import LocalModelClient
from serving.model_server import ModelServer
from serving.settings import Settings
from tests.utils.factories import make_bundle, make_shop
from tests.utils.http import auth


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("privacy-shop") / "shop", users=120, items=60)


@pytest.fixture(scope="module")
def bundles(shop, tmp_path_factory):
    """Two small trained versions (different sizes, so their vectors differ)."""
    root = tmp_path_factory.mktemp("privacy-bundles")
    return [make_bundle(shop, root / f"b{dim}", dim=dim, epochs=1) for dim in (8, 12)]


@pytest.fixture
def service(shop, bundles, tmp_path, monkeypatch):
    """var/ with the store, an MLflow registry holding both versions, and an app serving the
    champion from its download cache (var/models/recsys-v2)."""
    monkeypatch.chdir(tmp_path)
    var = tmp_path / "var"
    uri = f"sqlite:///{var / 'mlflow.db'}"
    registry = Registry(uri)
    for path in bundles:
        with registry.run("privacy-test"):
            version = registry.log_bundle(path).registered_model_version
    registry.set_alias(CHAMPION, version)
    registry.download_bundle("models:/recsys/1", dst=var / "models" / "recsys-v1")
    settings = Settings(
        database_url=f"sqlite:///{var / 'recsys.db'}", mlflow_tracking_uri=uri,
        model_uri="models:/recsys@champion", var_dir=str(var), device="cpu",
        model_poll_seconds=0,
    )  # fmt: skip
    store = Store.open(settings.database_url)
    store.events.append(pd.read_parquet(shop / "events.parquet"))
    app = create_app(settings, store, LocalModelClient(ModelServer(settings, store.erased_hashes)))
    keys = {role.value: store.keys.create(role, role.value)[0] for role in Role}
    with TestClient(app) as client:
        yield client, keys, store, var, registry
    store.close()


def _files_holding(root, needles: list[bytes]) -> list[str]:
    return sorted(
        str(f.relative_to(root))
        for f in root.rglob("*")
        if f.is_file() and any(n in f.read_bytes() for n in needles)
    )


def test_erasure_leaves_no_trace_in_any_file_of_the_service_or_the_registry(service, bundles):
    client, keys, store, var, _ = service
    victim = str(load_bundle(bundles[0]).user_ids[5])
    client.put(f"/v1/users/{victim}", json={"email": "victim@example.com",
               "consents": {"email": True}}, headers=auth(keys["ingest"]))  # fmt: skip
    vectors = []
    for path in bundles:
        bundle = load_bundle(path)
        vectors.append(bundle.arrays["user_vectors"][list(bundle.user_ids).index(victim)])
    needles = [victim.encode(), victim.encode("utf-32-le"), b"victim@example.com"]
    needles += [np.asarray(v).tobytes() for v in vectors]
    assert len(_files_holding(var, needles)) >= 6  # store, 2 registry versions, 2 caches

    started = time.perf_counter()
    response = client.delete(f"/v1/users/{victim}", headers=auth(keys["admin"]))
    seconds = time.perf_counter() - started
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["pending"] == 0 and seconds < 30
    artifacts = {a["artifact"]: a for s in receipt["scrubs"] for a in s["artifacts"]}
    assert artifacts["models:/recsys/1"]["rows_removed"] == 1
    assert artifacts["models:/recsys/2"]["rows_removed"] == 1
    caches = [a for a in artifacts if a.startswith("cache:")]
    assert len(caches) == 2  # var/models/recsys-v1 and -v2
    assert "sqlite write-ahead log" in artifacts

    assert _files_holding(var, needles) == []
    listed = client.get("/v1/admin/erasures", headers=auth(keys["admin"])).json()
    assert listed["pending"] == 0 and listed["erasures"][0]["receipt_id"] == receipt["receipt_id"]
    assert victim not in str(listed)
    # The scrubbed champion still loads and answers for everyone else.
    assert client.post("/v1/admin/reload", headers=auth(keys["admin"])).status_code == 200
    other = str(load_bundle(bundles[1]).user_ids[0])
    recs = client.get(f"/v1/users/{other}/recommendations", headers=auth(keys["read"]))
    assert recs.status_code == 200 and recs.json()["items"]


def test_a_registry_that_is_down_leaves_the_scrub_pending_until_it_is_back(service, bundles):
    client, keys, store, var, registry = service
    victim = str(load_bundle(bundles[0]).user_ids[7])
    down = DerivedDataScrubber(store, tracking_uri="http://127.0.0.1:9")  # nothing listens
    receipt = store.erase_user(victim, actor="test")
    scrubs = down.erase(receipt)
    assert [(s["target"], s["status"]) for s in scrubs][0] == ("registry", "pending")
    assert "unreachable" in scrubs[0]["last_error"]
    listed = client.get("/v1/admin/erasures", headers=auth(keys["admin"])).json()
    assert listed["pending"] >= 1 and listed["erasures"][0]["pending"] == 1
    assert _files_holding(var / "mlartifacts", [victim.encode("utf-32-le")])  # still there

    back = DerivedDataScrubber(store, tracking_uri=registry.tracking_uri)
    with store.engine.begin() as conn:  # due now instead of after the back-off
        conn.exec_driver_sql("UPDATE privacy_scrubs SET next_attempt_at = created_at")
    assert back.retry_due() == {"done": 1, "pending": 0}
    assert _files_holding(var / "mlartifacts", [victim.encode("utf-32-le")]) == []
    listed = client.get("/v1/admin/erasures", headers=auth(keys["admin"])).json()
    assert listed["pending"] == 0


def test_export_holds_everything_and_is_empty_after_erasure(service, bundles):
    client, keys, store, var, _ = service
    user = str(load_bundle(bundles[0]).user_ids[9])
    client.put(f"/v1/users/{user}", json={"email": "x@example.com", "consents": {"email": True}},
               headers=auth(keys["ingest"]))  # fmt: skip
    client.put(f"/v1/users/{user}", json={"consents": {"email": False}},
               headers=auth(keys["ingest"]))  # fmt: skip
    assert client.get(f"/v1/users/{user}/export", headers=auth(keys["read"])).status_code == 403
    body = client.get(f"/v1/users/{user}/export", headers=auth(keys["admin"])).json()
    assert body["consents"] == {"email": False}
    assert [h["granted"] for h in body["tables"]["consent_history"]] == [True, False]
    assert body["tables"]["events"] and body["tables"]["user_profiles"][0]["email"]
    assert set(body["tables"]) >= {"events", "user_profiles", "segment_members", "campaigns"}
    assert body["recently_recommended"]["items"] == []
    shown = client.get(f"/v1/users/{user}/recommendations?k=3", headers=auth(keys["read"])).json()
    body = client.get(f"/v1/users/{user}/export", headers=auth(keys["admin"])).json()
    assert sorted(body["recently_recommended"]["items"]) == sorted(
        item["item_id"] for item in shown["items"]
    )
    client.delete(f"/v1/users/{user}", headers=auth(keys["admin"]))
    after = client.get(f"/v1/users/{user}/export", headers=auth(keys["admin"])).json()
    assert after["consents"] == {} and not after["tables"]["events"]
    assert after["recently_recommended"]["items"] == []  # erasure forgot them too


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis(socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="Redis does not answer at 127.0.0.1:6379")
def test_a_key_over_its_rate_gets_429_and_other_keys_and_kinds_do_not(service):
    client, keys, store, var, _ = service
    slow, _record = store.keys.create(Role.READ, "slow")
    KeyRateStore(store.engine).set(_record.id, read=5.0)
    codes = [client.get("/v1/categories", headers=auth(slow)).status_code for _ in range(20)]
    assert codes[:5] == [200] * 5 and 429 in codes
    refused = client.get("/v1/categories", headers=auth(slow))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "rate" in refused.json()["detail"]
    other = [client.get("/v1/categories", headers=auth(keys["read"])).status_code
             for _ in range(20)]  # fmt: skip
    assert set(other) == {200}
    metrics = client.get("/metrics").text
    assert 'recsys_rate_limited_total{kind="read",role="read"}' in metrics
