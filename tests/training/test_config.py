"""Configuration errors name the key and the problem."""

from __future__ import annotations

import pytest

from training.config import ConfigError, load_config, parse_config
from training.job import build_model


def test_valid_config_parses(config_dict):
    config = parse_config(config_dict)
    assert config.evaluation.k == [10, 20] and config.metric_k == 20


@pytest.mark.parametrize(
    "change, key, words",
    [
        (lambda c: c.pop("data"), "data", "missing"),
        (lambda c: c["data"].update(interactionz="x"), "data.interactionz", "unknown key"),
        (lambda c: c.update(device="tpu"), "device", "auto"),
        (lambda c: c["evaluation"].update(metric="auc@5"), "evaluation.metric", "ndcg@K"),
        (lambda c: c["evaluation"].update(k=[0]), "evaluation.k", "positive"),
        (lambda c: c["evaluation"].update(baselines=["magic"]), "evaluation.baselines", "pop"),
        (lambda c: c.update(promotion={"min_improvement": -1}), "promotion.min_improvement",
         "greater than"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(config_dict, change, key, words):
    change(config_dict)
    with pytest.raises(ConfigError) as error:
        parse_config(config_dict, "train.yaml")
    assert f"train.yaml: {key}" in str(error.value) and words in str(error.value)


def test_unknown_model_key_and_bad_model_value(config_dict):
    config_dict["model"] = {"dimm": 8}
    with pytest.raises(ConfigError, match=r"model\.dimm: unknown key"):
        build_model(parse_config(config_dict))
    config_dict["model"] = {"max_history": 0}
    with pytest.raises(ConfigError, match="max_history"):
        build_model(parse_config(config_dict))


def test_yaml_problems(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)
