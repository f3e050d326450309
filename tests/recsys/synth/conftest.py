"""One small generated shop shared by the generator tests (generating it takes well under 1 s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from recsys.data.frame import pd
from recsys.data.loaders import load_events, load_items, load_users
from recsys.synth import ShopConfig, generate_shop

SMALL = {"users": 500, "items": 200, "seed": 11}


@dataclass
class Shop:
    """A generated shop loaded through the canonical loaders, plus its ground truth."""

    path: Path
    config: ShopConfig
    summary: dict
    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    segments: pd.DataFrame
    complements: pd.DataFrame


@pytest.fixture(scope="session")
def shop(tmp_path_factory) -> Shop:
    path = tmp_path_factory.mktemp("synth") / "shop"
    config = ShopConfig(**SMALL)
    summary = generate_shop(config, path)
    return Shop(
        path=path,
        config=config,
        summary=summary,
        events=load_events(path / "events.parquet"),
        items=load_items(path / "items.parquet"),
        users=load_users(path / "users.parquet"),
        segments=pd.read_parquet(path / "truth" / "user_segments.parquet"),
        complements=pd.read_parquet(path / "truth" / "complements.parquet"),
    )
