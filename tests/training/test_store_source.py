"""Training from the store: chunked reads on both backends, and a whole run with source: store."""

from __future__ import annotations

import pytest

from recsys.bundle import load_bundle
from recsys.data.loaders import load_events
from recsys.registry import Registry
from recsys.store import Store
from tests.recsys.store.conftest import _shared_postgres, engine, store, store_db  # noqa: F401
from training.config import ConfigError, parse_config
from training.job import run_training
from training.store_source import read_store_events


def _canonical(frame):
    cols = [
        "user_id",
        "item_id",
        "timestamp",
        "event_type",
        "quantity",
        "value",
        "session_id",
        "properties",
    ]
    text = dict.fromkeys(["user_id", "item_id", "event_type", "session_id", "properties"], str)
    return frame[cols].astype(text).reset_index(drop=True)


def test_chunked_read_equals_the_export(store, tiny_shop):  # noqa: F811
    events = load_events(tiny_shop / "events.parquet").head(500)
    store.events.append(events)
    chunked = read_store_events(store, chunk_rows=37)
    assert len(chunked) == 500
    assert _canonical(chunked).equals(_canonical(store.events.export_frame()))


def test_chunk_rows_must_be_positive(store):  # noqa: F811
    with pytest.raises(ValueError, match="chunk_rows must be positive"):
        read_store_events(store, chunk_rows=0)


def test_training_from_the_store_excludes_erased_customers(config_dict, tiny_shop, tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    service = Store.open(url)
    events = load_events(tiny_shop / "events.parquet")
    service.events.append(events)
    victim = str(events["user_id"].iloc[0])
    service.erase_user(victim, actor="test")
    service.events.append(events[events["user_id"] == victim].head(3))  # re-delivered later
    service.close()

    config_dict["data"] = {"source": "store", "database_url": url}
    outcome = run_training(parse_config(config_dict), progress=False)
    assert outcome.version == "1" and outcome.promoted
    bundle = load_bundle(
        Registry(config_dict["mlflow"]["tracking_uri"]).download_bundle("models:/recsys@champion")
    )
    users = set(map(str, bundle.user_ids))
    assert victim not in users
    assert users <= set(events["user_id"].astype(str))


def test_files_source_still_needs_interactions(config_dict):
    config_dict["data"] = {"items": "x.parquet"}
    with pytest.raises(ConfigError, match="interactions: required key is missing"):
        parse_config(config_dict)


def test_an_empty_store_is_a_clear_error(config_dict, tmp_path):
    config_dict["data"] = {"source": "store", "database_url": f"sqlite:///{tmp_path / 'e.db'}"}
    with pytest.raises(ValueError, match="holds no events to train on"):
        run_training(parse_config(config_dict), progress=False)
