"""Training data: the configured files, minus every user erased from the store."""

from __future__ import annotations

import logging
import os

from recsys.data.adapters import Dataset, load_dataset
from recsys.data.loaders import load_items, load_users
from recsys.errors import InvalidInputError
from recsys.settings import DEFAULT_DATABASE_URL, get_settings
from recsys.store.erasure import drop_erased
from training.config import TrainConfig

logger = logging.getLogger(__name__)


def erased_user_hashes(database_url: str | None) -> set[str]:
    """Hashes of erased users in the store at ``database_url`` (empty when there is no store)."""
    if not database_url:
        return set()
    from recsys.store import read_erased_hashes

    return read_erased_hashes(database_url)


def load_training_data(config: TrainConfig, progress: bool = False) -> Dataset:
    """See :func:`_load`; from the store, events past their retention
    (RECSYS_RETENTION_EVENTS_DAYS) are dropped, so training never sees an expired event even
    before the retention job deleted it. (Files are the caller's data sets, kept as given.)"""
    from recsys.privacy import drop_expired, privacy_settings

    dataset = _load(config, progress)
    if config.data.source != "store":
        return dataset
    dataset.events = drop_expired(dataset.events, privacy_settings())
    if dataset.events.empty:
        raise InvalidInputError("no interactions within the events retention to train on")
    return dataset


def _load(config: TrainConfig, progress: bool = False) -> Dataset:
    """Events (and optional item/user tables) of ``config.data``, erased users removed:
    the configured files, or the store's events, catalogue and customers (``source: store``).

    The store consulted for erasures is ``data.database_url``, else ``RECSYS_DATABASE_URL``, else
    the default ``sqlite:///var/recsys.db`` when that file exists.
    """
    data = config.data
    if data.source == "store":
        from recsys.store import Store
        from training.store_source import load_store_dataset

        store = Store.open(data.database_url or get_settings().database_url)
        try:
            return load_store_dataset(store, progress=progress)
        finally:
            store.close()
    dataset = load_dataset(
        data.interactions, columns=data.columns or None, delimiter=data.delimiter
    )
    if data.items is not None:
        dataset.items = load_items(data.items)
    if data.users is not None:
        dataset.users = load_users(data.users)
    url = data.database_url or get_settings().database_url
    if url == DEFAULT_DATABASE_URL and not os.path.exists("var/recsys.db"):
        url = None  # no store yet: nobody was erased
    hashes = erased_user_hashes(url)
    dataset.events = drop_erased(dataset.events, hashes)
    dataset.users = drop_erased(dataset.users, hashes)
    if dataset.events.empty:
        raise InvalidInputError(f"{data.interactions}: no interactions left to train on")
    return dataset
