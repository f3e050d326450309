"""Database fixtures: every store test runs against SQLite (a temp file) and PostgreSQL.

PostgreSQL is looked for at ``RECSYS_TEST_POSTGRES_URL`` or, by default, 127.0.0.1:5432
database ``test`` as user ``postgres`` then ``root`` (trust auth). When none answers, the
PostgreSQL cases are skipped with the reason. Every PostgreSQL database is a uniquely named
schema (search_path points at it) that is dropped afterwards, so parallel runs never collide:
``db`` makes an empty one per test (schema and migration tests); ``store_db``/``engine`` share
one initialised schema per test run and empty its tables before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from recsys.store import Base, DatabaseUnavailableError, Store, init_schema, make_engine

DEFAULT_POSTGRES_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
_postgres: dict[str, Any] = {}


def _find_postgres() -> tuple[Engine | None, str]:
    """An AUTOCOMMIT admin engine on the first reachable URL, or (None, why not)."""
    if "engine" not in _postgres:
        configured = os.environ.get("RECSYS_TEST_POSTGRES_URL")
        reasons = []
        _postgres["engine"] = None
        for url in (configured,) if configured else DEFAULT_POSTGRES_URLS:
            try:
                engine = make_engine(
                    url, connect_args={"connect_timeout": 3}, isolation_level="AUTOCOMMIT"
                )
            except DatabaseUnavailableError as exc:
                reasons.append(str(exc))
                continue
            _postgres["engine"] = engine
            break
        _postgres["reason"] = "PostgreSQL unreachable: " + "; ".join(reasons)
    return _postgres["engine"], _postgres.get("reason", "")


@dataclass
class Database:
    """One test database: SQLite file or PostgreSQL schema; ``engine()`` opens more engines."""

    backend: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    path: Path | None = None
    main: Engine | None = None
    _engines: list[Engine] = field(default_factory=list)

    def engine(self, **kwargs: Any) -> Engine:
        engine = make_engine(self.url, connect_args=dict(self.connect_args), **kwargs)
        self._engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self._engines:
            engine.dispose()


def _postgres_admin() -> Engine:
    admin, reason = _find_postgres()
    if admin is None:
        pytest.skip(reason)
    return admin


@contextmanager
def _postgres_schema() -> Iterator[Database]:
    """A new, uniquely named, empty schema; dropped on exit."""
    admin = _postgres_admin()
    schema = f"recsys_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = admin.url.render_as_string(hide_password=False)
    database = Database("postgresql", url, {"options": f"-csearch_path={schema}"}, schema=schema)
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _sqlite(tmp_path: Path) -> Database:
    path = tmp_path / "var" / "recsys.db"
    return Database("sqlite", f"sqlite:///{path}", path=path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Iterator[Database]:
    """An empty database of each backend (no tables yet)."""
    if request.param == "sqlite":
        database = _sqlite(tmp_path)
        yield database
        database.dispose()
    else:
        with _postgres_schema() as database:
            yield database


@pytest.fixture(scope="session")
def _shared_postgres() -> Iterator[Database]:
    """One initialised schema for this test run; ``store_db`` empties its tables per test."""
    with _postgres_schema() as database:
        database.main = database.engine()
        init_schema(database.main)
        yield database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request, tmp_path) -> Iterator[Database]:
    """A database of each backend with the schema initialised and every table empty."""
    if request.param == "sqlite":
        database = _sqlite(tmp_path)
        database.main = database.engine()
        init_schema(database.main)
        yield database
        database.dispose()
        return
    database = request.getfixturevalue("_shared_postgres")
    with database.main.begin() as conn:  # DELETE: much faster than TRUNCATE on tiny tables
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "schema_version":
                conn.execute(table.delete())
    yield database


@pytest.fixture
def engine(store_db) -> Engine:
    """An engine on ``store_db``."""
    return store_db.main


@pytest.fixture
def store(engine) -> Store:
    """Every store over ``engine``."""
    return Store(engine)


T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def events(n: int, *, users: int = 3, prefix: str = "e", start: int = 0) -> list[dict[str, Any]]:
    """``n`` canonical event records over ``users`` users; every third one a purchase."""
    out = []
    for i in range(start, start + n):
        purchase = i % 3 == 2
        out.append(
            {
                "event_id": f"{prefix}{i}",
                "user_id": f"user-{i % users}",
                "item_id": f"item-{i % 7}",
                "event_type": "purchase" if purchase else "view",
                "timestamp": T0 + timedelta(minutes=i),
                "quantity": 1,
                "value": 10.0 + i if purchase else None,
                "session_id": f"s{i // 10}",
                "properties": {"page": i},
            }
        )
    return out


@pytest.fixture
def t0() -> datetime:
    """The time of the first event made by ``make_events``."""
    return T0


@pytest.fixture
def make_events():
    """Factory of canonical event records (see :func:`events`)."""
    return events
