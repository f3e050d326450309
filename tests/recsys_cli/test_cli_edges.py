"""The `recsys` command's first-hour edges: --version, help without type noise, one-line errors
for a GPU that is not there, and a delimiter hint that names an option that exists."""

from __future__ import annotations

import json
import sys

import pytest

from recsys import __version__
from recsys.device import cuda_available
from recsys_cli.main import main

COMMANDS = [[], ["evaluate"], ["generate"], ["train"], ["serve"], ["keys"], ["keys", "create"]]


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["recsys", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1 if code else 0), out, err


def test_version_prints_and_exits_0(monkeypatch, capsys):
    code, out, _ = _run(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"recsys {__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "recsys")
def test_help_shows_no_bool_placeholder(monkeypatch, capsys, command):
    code, out, _ = _run(monkeypatch, capsys, *command, "--help")
    assert code == 0 and "--help" in out
    assert "<bool>" not in out


@pytest.mark.skipif(cuda_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,timestamp\nu1,i1,1\n", encoding="utf-8")
    code, _, err = _run(monkeypatch, capsys, "evaluate", "--interactions", str(events),
                        "--device", "cuda")  # fmt: skip
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and "no CUDA GPU" in line


def test_an_unknown_device_is_a_usage_error(monkeypatch, capsys, tmp_path):
    code, _, err = _run(monkeypatch, capsys, "evaluate", "--interactions", str(tmp_path / "x.csv"),
                        "--device", "gpu")  # fmt: skip
    assert code == 2 and "--device" in err and "auto, cpu, cuda" in err


def _semicolon_file(tmp_path):
    rows = ["user_id;item_id;timestamp"]
    for user in range(6):
        rows += [f"u{user};i{(user + step) % 8};{user * 10 + step}" for step in range(5)]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_delimiter_hint_names_an_option_that_works(monkeypatch, capsys, tmp_path):
    path = _semicolon_file(tmp_path)
    code, _, err = _run(monkeypatch, capsys, "evaluate", "--interactions", str(path),
                        "--models", "pop", "--k", "2")  # fmt: skip
    assert code == 2 and "--delimiter ';'" in err
    code, out, _ = _run(monkeypatch, capsys, "evaluate", "--interactions", str(path),
                        "--models", "pop", "--k", "2", "--delimiter", ";", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["model"] == "pop"
