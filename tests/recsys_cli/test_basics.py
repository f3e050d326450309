"""`recsys --help`, `serve --help` and `generate` (``--version``: test_cli_edges.py)."""

from __future__ import annotations

import json


def test_help_lists_every_command_and_the_version_option(recsys):
    result = recsys("--help")
    assert result.code == 0 and "--version" in result.stdout
    for command in ("generate", "evaluate", "train", "serve", "keys"):
        assert command in result.stdout


def test_serve_help_describes_its_options_without_starting_anything(recsys, tmp_path):
    result = recsys("serve", "--help")
    assert result.code == 0
    assert "--port" in result.stdout and "<bool>" not in result.stdout
    assert not (tmp_path / "var").exists()


def test_generate_writes_a_tiny_shop(recsys, tmp_path):
    out = tmp_path / "shop"
    result = recsys("generate", "--users", "25", "--items", "10", "--out", str(out), "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["users"] == 25 and summary["counts"]["items"] == 10
    assert {"events.parquet", "items.parquet", "users.parquet"} <= {p.name for p in out.iterdir()}


def test_generate_bad_input_is_a_usage_error_naming_the_option(recsys, tmp_path):
    result = recsys("generate", "--users", "0", "--items", "10", "--out", str(tmp_path / "s"))
    assert result.code == 2
    assert "--users" in result.stderr and "users must be >= 1" in result.stderr
    assert not (tmp_path / "s").exists()
