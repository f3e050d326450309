"""Output handling of the generator: no overwrites without --force, nothing half-written on
failure, clear errors for bad arguments, and the `recsys generate` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from recsys.synth import OutputExistsError, ShopConfig, ShopConfigError, generate_shop
from recsys_cli.main import app

TINY = {"users": 30, "items": 12, "seed": 3}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path):
    out = tmp_path / "shop"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty; pass --force"):
        generate_shop(ShopConfig(**TINY), out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_force_replaces_an_earlier_shop_but_never_other_files(tmp_path):
    out = tmp_path / "shop"
    generate_shop(ShopConfig(**TINY), out)
    generate_shop(ShopConfig(**{**TINY, "seed": 4}), out, force=True)
    assert json.loads((out / "truth" / "summary.json").read_text())["seed"] == 4
    assert _leftovers(tmp_path) == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="refusing to delete it even with --force"):
        generate_shop(ShopConfig(**TINY), other, force=True)
    assert (other / "keep.txt").read_text() == "precious"


def test_an_empty_or_missing_directory_is_fine(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_shop(ShopConfig(**TINY), empty)
    generate_shop(ShopConfig(**TINY), tmp_path / "a" / "b")
    assert (empty / "events.parquet").is_file()
    assert (tmp_path / "a" / "b" / "truth" / "complements.parquet").is_file()


class _Interrupt(KeyboardInterrupt):
    pass


def _interrupt(done, total):
    raise _Interrupt


def test_an_interrupted_run_leaves_nothing_behind(tmp_path):
    out = tmp_path / "shop"
    with pytest.raises(_Interrupt):
        generate_shop(ShopConfig(**TINY), out, on_block=_interrupt)
    assert not out.exists()
    assert _leftovers(tmp_path) == []
    # ... and an interrupted --force run keeps the earlier shop intact.
    generate_shop(ShopConfig(**TINY), out)
    before = (out / "events.parquet").read_bytes()
    with pytest.raises(_Interrupt):
        generate_shop(ShopConfig(**{**TINY, "seed": 9}), out, force=True, on_block=_interrupt)
    assert (out / "events.parquet").read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"users": 0}, "users", "users must be >= 1, got 0"),
        ({"items": 1}, "items", "items must be >= 2, got 1"),
        ({"users": 2.5}, "users", "users must be an integer"),
        ({"seed": -1}, "seed", "seed must be >= 0"),
        ({"segments": 0}, "segments", "segments must be >= 1"),
        ({"segments": 1000}, "segments", "segments must be <= 256"),
        ({"events_per_user": 0.5}, "events_per_user", "events_per_user must be >= 1"),
        ({"events_per_user": float("nan")}, "events_per_user", "must be finite"),
        ({"days": 0}, "days", "days must be > 0"),
        ({"start": "next tuesday"}, "start", "cannot be parsed from 'next tuesday'"),
        ({"start": "1960-01-01"}, "start", "within 1970..2200"),
    ],
)
def test_bad_arguments_are_rejected_with_the_field_named(changes, field, message):
    with pytest.raises(ShopConfigError, match=message) as info:
        ShopConfig(**{**TINY, **changes})
    assert info.value.field == field


def test_generate_command_writes_a_shop_and_prints_one_summary_line(tmp_path):
    out = tmp_path / "shop"
    args = ["generate", "--users", "40", "--items", "15", "--out", str(out), "--seed", "2"]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("generated 40 users, 15 items,") and "\n" not in line
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "not empty; pass --force" in again.output
    forced = CliRunner().invoke(app, [*args, "--force", "--json", "--start", "2025-06-01"])
    assert forced.exit_code == 0, forced.output
    summary = json.loads(forced.stdout)
    assert summary["params"]["start"] == "2025-06-01T00:00:00Z"
    assert summary["counts"]["users"] == 40


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--users", "0", "users must be >= 1"), ("--days", "-3", "days must be > 0")],
)
def test_generate_command_rejects_bad_arguments(tmp_path, option, value, message):
    args = ["generate", "--users", "5", "--items", "5", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(app, [*args, option, value])
    assert result.exit_code == 2
    assert option in result.output and message in result.output
    assert not (tmp_path / "s").exists()


def test_a_terminated_command_leaves_nothing_behind(tmp_path):
    out = tmp_path / "shop"
    command = [sys.executable, "-m", "recsys_cli.main", "generate", "--users", "400000"]
    command += ["--items", "2000", "--out", str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _leftovers(tmp_path) and process.poll() is None:
            assert time.monotonic() < deadline, "the generator never started writing"
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
        process.wait()
    assert not out.exists()
    assert _leftovers(tmp_path) == []
