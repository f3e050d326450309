"""A real app over a real store (SQLite file) and a real model bundle, without Ray."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from recsys.store import Role, Store
from serving.app import create_app
from serving.model_client import LocalModelClient
from serving.model_server import ModelServer
from serving.settings import Settings
from tests.utils.factories import make_bundle, make_shop


@pytest.fixture(scope="session")
def shop_dir(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("shop") / "shop")


@pytest.fixture(scope="session")
def bundle_dir(shop_dir, tmp_path_factory):
    return make_bundle(shop_dir, tmp_path_factory.mktemp("bundle") / "bundle")


@pytest.fixture
def settings(tmp_path, bundle_dir) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'recsys.db'}",
        model_uri=str(bundle_dir),
        var_dir=str(tmp_path / "var"),
        device="cpu",
        max_body_bytes=200_000,
    )


@pytest.fixture
def store(settings):
    store = Store.open(settings.database_url)
    yield store
    store.close()


@pytest.fixture
def server(settings, store):
    return ModelServer(settings, store.erased_hashes)


@pytest.fixture
def keys(store) -> dict[str, str]:
    """One key per role."""
    return {role.value: store.keys.create(role, f"test {role.value}")[0] for role in Role}


@pytest.fixture
def client(settings, store, server):
    app = create_app(settings, store, LocalModelClient(server))
    with TestClient(app) as test_client:
        yield test_client
