"""One real Ray Serve run: start, query, ingest and see the next answer change, catalogue changes
(out of stock, a new item) in the next answer, the new champion picked up by the replicas' own
registry poll under traffic without a failed request, erase, shut down."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
import time

import httpx
import pytest

from recsys.registry import CHAMPION, Registry
from recsys.store import Store
from serving.settings import Settings, resolved
from tests.utils.factories import make_bundle
from tests.utils.http import auth

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _register(registry: Registry, bundle_dir) -> str:
    with registry.run(run_name="test"):
        info = registry.log_bundle(bundle_dir)
    version = str(info.registered_model_version)
    registry.set_alias(CHAMPION, version)
    return version


@pytest.fixture(scope="module")
def served(tmp_path_factory, shop_dir):
    ray = pytest.importorskip("ray")
    from ray import serve

    from serving.deployments import build_app

    root = tmp_path_factory.mktemp("served")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    registry = Registry(tracking, artifact_root=str(root / "artifacts"))
    first = _register(registry, make_bundle(shop_dir, root / "b1" / "bundle"))
    port = _free_port()
    settings = resolved(
        Settings(
            database_url=f"sqlite:///{root / 'recsys.db'}",
            mlflow_tracking_uri=tracking,
            var_dir=str(root / "var"),
            port=port,
            device="cpu",
            replica_num_cpus=0.25,
            model_poll_seconds=1.0,
        )
    )
    store = Store.open(settings.database_url)
    key, _ = store.keys.create("admin", "integration test")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name="recsys", route_prefix="/")
    try:
        yield {
            "base": f"http://127.0.0.1:{port}", "key": key, "registry": registry,
            "first": first, "root": root, "store": store, "settings": settings,
        }  # fmt: skip
    finally:
        serve.shutdown()
        ray.shutdown()
        store.close()


def test_query_ingest_reload_erase(served, shop_dir):
    base, headers = served["base"], auth(served["key"])
    client = httpx.Client(base_url=base, headers=headers, timeout=30)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["model_version"] == served["first"]

    info = client.get("/v1/admin/model").json()
    user = "u0003"
    before = client.get(f"/v1/users/{user}/recommendations?k=10").json()
    assert before["model_version"] == served["first"] and len(before["items"]) == 10
    last = before["items"][-1]["item_id"]
    events = [{"user_id": user, "item_id": last, "event_type": "add_to_cart"}] * 3
    assert client.post("/v1/events", json={"events": events}).json()["accepted"] == 3
    after = client.get(f"/v1/users/{user}/recommendations?k=10").json()
    assert [r["item_id"] for r in after["items"]] != [r["item_id"] for r in before["items"]]

    # Sent together, they share @serve.batch calls: the bad ones fail alone, as their kind.
    good, unknown = f"/v1/users/{user}/recommendations?k=4", "/v1/items/no-such-item/similar"
    typo = f"/v1/users/{user}/recommendations?category=no-such-category"
    paths = [good, typo, good, unknown] * 4
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        burst = list(pool.map(client.get, paths))
    assert [r.status_code for r in burst] == [200, 422, 200, 404] * 4
    assert all(len(r.json()["items"]) == 4 for r in burst[::2])
    assert "unknown category 'no-such-category'" in burst[1].json()["detail"]
    assert client.get("/v1/categories").json()["categories"]

    # The catalogue is live: the next answer follows a PUT, and a new item is served at once.
    shown = [r["item_id"] for r in client.get(f"/v1/users/{user}/recommendations?k=10").json()
             ["items"]]  # fmt: skip
    stock = client.put("/v1/items", json={"items": [{"item_id": shown[0], "stock": 0}]})
    assert stock.json()["accepted"] == 1
    again = client.get(f"/v1/users/{user}/recommendations?k=10").json()["items"]
    assert shown[0] not in [r["item_id"] for r in again] and len(again) == 10
    anchor = info["example_item_id"]
    category = client.get(f"/v1/items/{anchor}/similar?k=1").json()["items"][0]["category"]
    new = {"item_id": "ray-new", "title": "New", "category": category, "price": 10.0}
    assert client.put("/v1/items", json={"items": [new]}).json()["accepted"] == 1
    similar = client.get(f"/v1/items/{anchor}/similar?k=20").json()["items"]
    assert "ray-new" in [r["item_id"] for r in similar]
    assert client.get("/v1/items/ray-new/similar?k=3").status_code == 200

    second = _register(served["registry"], make_bundle(shop_dir, served["root"] / "b2" / "bundle",
                                                       dim=8))  # fmt: skip
    failures, answered, stop = [], [], threading.Event()

    def traffic():
        with httpx.Client(base_url=base, headers=headers, timeout=30) as hammer:
            while not stop.is_set():
                response = hammer.get(f"/v1/users/{user}/recommendations?k=5")
                if response.status_code != 200:
                    failures.append(response.status_code)
                else:
                    answered.append(response.json()["model_version"])

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    # no admin call: the replica's poll (every second) finds the new champion and swaps
    deadline = time.monotonic() + 60
    while second not in answered[-5:] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert served["first"] in answered and answered[-1] == second
    assert client.get("/v1/admin/model").json()["version"] == second
    # the swapped-in model applied the stored catalogue before serving
    assert shown[0] not in [r["item_id"] for r in client.get(
        f"/v1/users/{user}/recommendations?k=10").json()["items"]]  # fmt: skip
    reload = client.post("/v1/admin/reload").json()
    assert reload == {"previous_version": second, "version": second, "changed": False}
    assert info["version"] == served["first"]

    receipt = client.delete(f"/v1/users/{user}").json()
    assert receipt["deleted"]["events"] == 3 and receipt["deleted"]["in_memory"] >= 1
    erased = client.get(f"/v1/users/{user}/recommendations?k=5").json()
    assert erased["strategy"] == "popular"
    metrics = httpx.get(f"{base}/metrics").text
    assert "recsys_events_ingested_total 3.0" in metrics


def test_split_mode_redeployed_in_place_under_traffic(served):
    """The fixture serves the CPU default (colocated: the engine in the ingress replica); the
    split mode (a model deployment behind a handle) replaces it in place: answers go on."""
    from ray import serve

    from serving.deployments import build_app

    base, headers = served["base"], auth(served["key"])
    assert set(serve.status().applications["recsys"].deployments) == {"api", "campaign_worker"}
    shipped = httpx.get(f"{base}/v1/campaigns", headers=headers, timeout=30).json()["campaigns"]
    assert "cart-abandonment" in {c["id"] for c in shipped}  # installed by the worker replica
    codes: list[int] = []
    stop = threading.Event()

    def traffic():
        with httpx.Client(base_url=base, headers=headers, timeout=60) as hammer:
            while not stop.is_set():
                codes.append(hammer.get("/v1/users/u0005/recommendations?k=5").status_code)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        split = served["settings"].model_copy(update={"serving_mode": "split"})
        serve.run(build_app(split), name="recsys", route_prefix="/")
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    deployments = set(serve.status().applications["recsys"].deployments)
    assert deployments == {"api", "model", "campaign_worker"}
    assert codes and set(codes) <= {200, 503}, codes
    answer = httpx.get(f"{base}/v1/users/u0005/recommendations?k=5", headers=headers, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["items"]) == 5
