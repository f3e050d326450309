"""Shared fixtures: where the public benchmark data lives, and small factories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RECSYS_DATA_DIR", ROOT.parent / "shared" / "data"))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _need(relative: str) -> Path:
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"benchmark data {path} is absent (set RECSYS_DATA_DIR to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def ml100k_path() -> Path:
    """MovieLens 100K u.data, or skip with the reason."""
    return _need("ml-100k/u.data")


@pytest.fixture(scope="session")
def groceries_path() -> Path:
    """The Groceries CSV, or skip with the reason."""
    return _need("groceries/Groceries_dataset.csv")
