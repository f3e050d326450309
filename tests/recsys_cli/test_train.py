"""`recsys train` on a tiny config with a real MLflow SQLite store in the test's directory."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.fixture
def config(config_dict, tmp_path):
    """The training tests' tiny config (quick untuned model, MLflow under ``tmp_path``) as YAML."""
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config_dict))
    return path, config_dict


def test_train_registers_and_promotes_a_first_version(recsys, config, tmp_path):
    path, _ = config
    result = recsys("train", "--config", str(path), "--json", "--no-progress")
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert str(outcome["version"]) == "1" and outcome["promoted"] is True
    assert outcome["metric"] == "ndcg@20" and 0.0 <= outcome["value"] <= 1.0
    assert (tmp_path / "mlflow.db").exists()


def test_an_unknown_config_key_is_one_error_line_naming_it(recsys, config, tmp_path):
    path, values = config
    path.write_text(yaml.safe_dump(values | {"epochz": 3}))
    result = recsys("train", "--config", str(path))
    assert result.code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "epochz" in line
    assert not (tmp_path / "mlflow.db").exists()
