"""The retraining loop without Ray: a model server notices a new champion in the MLflow registry
by itself and swaps to it while answering, with no failed request."""

from __future__ import annotations

import threading
import time

from recsys.recommend import RecommendRequest
from recsys.registry import CHAMPION, Registry
from serving.failure import Failure
from serving.model_server import ModelServer


def _register(registry: Registry, bundle_dir) -> str:
    with registry.run(run_name="test"):
        info = registry.log_bundle(bundle_dir)
    version = str(info.registered_model_version)
    registry.set_alias(CHAMPION, version)
    return version


def test_a_new_champion_is_served_without_an_admin_call(settings, store, bundle_dir, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = Registry(tracking, artifact_root=str(tmp_path / "artifacts"))
    first = _register(registry, bundle_dir)
    polled = settings.model_copy(update={
        "model_uri": "models:/recsys@champion", "mlflow_tracking_uri": tracking,
        "model_poll_seconds": 0.2,
    })  # fmt: skip
    server = ModelServer(polled, store.erased_hashes)
    user = server.info()["example_user_id"]
    failures, versions, stop = [], [], threading.Event()

    def traffic():
        while not stop.is_set():
            answer = server.answer([RecommendRequest(user, 5)])[0]
            if isinstance(answer, Failure) or len(answer["items"]) != 5:
                failures.append(answer)
            else:
                versions.append(answer["model_version"])

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        second = _register(registry, bundle_dir)
        deadline = time.monotonic() + 60
        while server.info()["version"] != second and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert server.info()["version"] == second != first
    assert not failures, failures[:3]
    assert first in versions and versions[-1] == second


def test_a_bundle_directory_is_not_polled(settings, store):
    assert settings.model_poll_seconds > 0
    assert ModelServer(settings, store.erased_hashes)._poller is None  # no registry to ask
