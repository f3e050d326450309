"""Segment tests run on both store backends (the store tests' database fixtures)."""

from tests.recsys.store.conftest import (  # noqa: F401  (fixtures)
    _shared_postgres,
    engine,
    store,
    store_db,
)
