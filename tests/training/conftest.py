"""A tiny shop and a throwaway MLflow store per test."""

from __future__ import annotations

import pytest

from tests.utils.factories import make_shop


@pytest.fixture(scope="session")
def tiny_shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("train-shop") / "shop", users=200, items=80)


@pytest.fixture
def config_dict(tiny_shop, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # var/ and mlruns/ land in the temp dir, never in the repo
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    return {
        "seed": 7,
        "device": "cpu",
        "data": {
            "interactions": str(tiny_shop / "events.parquet"),
            "items": str(tiny_shop / "items.parquet"),
            "users": str(tiny_shop / "users.parquet"),
        },
        "evaluation": {"k": [10, 20], "metric": "ndcg@20", "baselines": ["pop"]},
        "model": {"dim": 8, "epochs": 2, "tune": False},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
