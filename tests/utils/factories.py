"""Small real artefacts for tests: a generated shop and a default-model bundle fitted on it."""

from __future__ import annotations

from pathlib import Path

from recsys.bundle import bundle_of, save_bundle
from recsys.data.frame import pd
from recsys.data.interactions import Interactions
from recsys.eval import interaction_pairs
from recsys.models.hybrid import HybridModel
from recsys.synth import ShopConfig, generate_shop

FAST_MODEL = {"dim": 16, "epochs": 3, "tune": False}


def make_shop(out: Path, users: int = 300, items: int = 150, seed: int = 3) -> Path:
    """A synthetic shop directory (events/items/users Parquet + truth)."""
    generate_shop(ShopConfig(users=users, items=items, seed=seed), out)
    return out


def fit_default_model(shop: Path, **overrides) -> tuple[HybridModel, pd.DataFrame, pd.DataFrame]:
    """The default model fitted (quickly, untuned) on every interaction of ``shop``."""
    events = pd.read_parquet(shop / "events.parquet")
    items = pd.read_parquet(shop / "items.parquet")
    users = pd.read_parquet(shop / "users.parquet")
    model = HybridModel(**(FAST_MODEL | overrides), device="cpu", seed=0)
    pairs = Interactions.from_frame(interaction_pairs(events))
    model.fit(pairs, items=items, users=users, events=events)  # as the training job does
    return model, items, events


def make_bundle(shop: Path, out: Path, **overrides) -> Path:
    """A serving bundle directory fitted on ``shop``."""
    model, items, _ = fit_default_model(shop, **overrides)
    return save_bundle(bundle_of(model, items, metrics={"ndcg@20": 0.0}), out)
