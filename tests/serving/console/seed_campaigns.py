"""Campaign data for the console tests (filled in with the campaign pages)."""

from __future__ import annotations

from recsys.store import Store
from serving.settings import Settings


def seed_campaigns(store: Store, settings: Settings) -> None:
    """Nothing yet."""
