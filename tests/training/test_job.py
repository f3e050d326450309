"""The training job end to end against a real (throwaway) MLflow store."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recsys.bundle import load_bundle
from recsys.registry import CHALLENGER, CHAMPION, Registry, RegistryUnavailableError
from recsys.store import Store
from training.config import parse_config
from training.data import load_training_data
from training.job import run_training


def test_first_run_registers_a_champion_and_equal_rerun_is_not_promoted(config_dict):
    config = parse_config(config_dict)
    first = run_training(config, progress=False)
    assert first.version == "1" and first.promoted and first.champion_version is None
    assert np.isfinite(first.value) and 0 < first.value <= 1
    assert {"ndcg@20", "recall@10", "retrieval.ndcg@20", "pop.ndcg@20"} <= set(first.metrics)

    registry = Registry(config.mlflow.tracking_uri)
    assert str(registry.alias_version(CHAMPION).version) == "1"
    bundle = load_bundle(registry.download_bundle("models:/recsys@champion"))
    assert bundle.kind == "default" and bundle.n_items > 0 and len(bundle.items) == bundle.n_items

    users = bundle.user_ids[:2].tolist()
    predicted = registry.load_pyfunc("models:/recsys@champion").predict(
        __import__("pandas").DataFrame({"user_id": users, "k": [3, 3]})
    )
    assert list(predicted.columns) == ["user_id", "rank", "item_id", "score"]
    assert len(predicted) == 6 and set(predicted["user_id"]) == set(users)

    second = run_training(config, progress=False)  # same data and seed: same holdout metric
    assert second.version == "2" and second.champion_version == "1"
    assert second.value == pytest.approx(first.value)
    assert not second.promoted and "NOT promoted" in second.summary()
    assert str(registry.alias_version(CHAMPION).version) == "1"
    assert str(registry.alias_version(CHALLENGER).version) == "2"
    listed = {row["version"]: row["aliases"] for row in registry.versions()}
    assert listed == {2: ["challenger"], 1: ["champion"]}


def test_a_better_challenger_is_promoted(config_dict):
    weak = dict(config_dict, model={"dim": 2, "epochs": 1, "tune": False,
                                    "params": {"w_twotower": 1.0, "w_ease": 0.0,
                                               "w_covisit": 0.0, "user_weight": 1.0}})  # fmt: skip
    first = run_training(parse_config(weak), progress=False)
    better = run_training(parse_config(config_dict), progress=False)
    assert better.value > first.value and better.promoted
    registry = Registry(config_dict["mlflow"]["tracking_uri"])
    assert str(registry.alias_version(CHAMPION).version) == better.version


def test_unreachable_mlflow_fails_before_training(config_dict):
    config_dict["mlflow"]["tracking_uri"] = "http://127.0.0.1:9"
    started = time.perf_counter()
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        run_training(parse_config(config_dict), progress=False)
    assert time.perf_counter() - started < 15


def test_a_failed_run_registers_nothing(config_dict, monkeypatch):
    config = parse_config(config_dict)

    def broken(self, alias, version):
        raise RuntimeError("registry went away")

    monkeypatch.setattr(Registry, "set_alias", broken)
    with pytest.raises(RuntimeError, match="went away"):
        run_training(config, progress=False)
    monkeypatch.undo()
    registry = Registry(config.mlflow.tracking_uri)
    assert registry.versions() == []
    runs = registry.client.search_runs([registry.experiment_id()])
    assert [run.info.status for run in runs] == ["FAILED"]


def test_erased_users_are_excluded_from_training(config_dict, tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'recsys.db'}")
    config_dict["data"]["database_url"] = f"sqlite:///{tmp_path / 'recsys.db'}"
    config = parse_config(config_dict)
    victim = load_training_data(config).events["user_id"].iloc[0]
    store.erase_user(victim, actor="test")
    store.close()
    dataset = load_training_data(config)
    assert victim not in set(dataset.events["user_id"])
    assert victim not in set(dataset.users["user_id"])
