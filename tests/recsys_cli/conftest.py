"""Run the `recsys` command in-process through its console entry point, as a user would."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from recsys_cli.main import main
from tests.training.conftest import config_dict, tiny_shop  # noqa: F401 (fixtures for train)
from tests.utils.factories import make_shop


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def recsys(monkeypatch, capsys):
    """``recsys(*args)``: the exit code and output of ``recsys ARGS`` (``main()``, so a recsys
    error becomes the one ``error: ...`` line and exit code the user sees)."""

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["recsys", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    return make_shop(tmp_path_factory.mktemp("cli-shop") / "shop", users=120, items=40)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """var/ and mlruns/ land in the test's directory; no store URL from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSYS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RECSYS_DEVICE", raising=False)
