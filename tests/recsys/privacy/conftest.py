"""Store fixtures of every backend (SQLite and PostgreSQL), as the store tests use them."""

from tests.recsys.store.conftest import (  # noqa: F401  (fixtures)
    _shared_postgres,
    engine,
    make_events,
    store,
    store_db,
    t0,
)
