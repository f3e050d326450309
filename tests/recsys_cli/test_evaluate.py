"""`recsys evaluate` on a tiny events file: JSON per model, and one-line errors for bad input."""

from __future__ import annotations

import json

import pandas as pd


def test_evaluate_prints_one_json_object_per_model(recsys, shop):
    result = recsys(
        "evaluate", "--interactions", str(shop / "events.parquet"), "--models", "pop,itemknn",
        "--k", "5,10", "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [row["model"] for row in rows] == ["pop", "itemknn"]
    for row in rows:
        assert 0.0 <= row["ndcg@10"] <= 1.0 and 0.0 <= row["recall@5"] <= row["recall@10"] <= 1.0


def test_evaluate_plain_output_is_one_line_per_model(recsys, shop):
    result = recsys(
        "evaluate", "--interactions", str(shop / "events.parquet"), "--models", "pop",
        "--k", "10", "--device", "cpu",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    [line] = result.stdout.strip().splitlines()
    assert line.startswith("pop") and "ndcg@10=" in line


def test_a_file_without_a_required_column_is_one_error_line_and_exit_2(recsys, tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({"user_id": ["u1", "u2"], "timestamp": [1, 2]}).to_csv(path, index=False)
    result = recsys("evaluate", "--interactions", str(path), "--models", "pop")
    assert result.code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "item_id" in line


def test_a_missing_file_is_one_error_line_and_exit_2(recsys, tmp_path):
    result = recsys("evaluate", "--interactions", str(tmp_path / "nope.csv"), "--models", "pop")
    assert result.code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nope.csv" in line


def test_an_unknown_model_is_a_usage_error_naming_the_choices(recsys, shop):
    result = recsys("evaluate", "--interactions", str(shop / "events.parquet"), "--models", "knn")
    assert result.code == 2
    assert "--models" in result.stderr and "'knn'" in result.stderr and "itemknn" in result.stderr
