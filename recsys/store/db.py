"""Engines and transactions for the store: SQLite (WAL) by default, PostgreSQL by URL.

``make_engine`` is the one place that knows about database URLs. Every SQLite connection is
configured by a ``connect`` listener (WAL, synchronous, busy timeout, foreign keys) and
transactions are begun by SQLAlchemy rather than by the ``sqlite3`` module, so reads are
repeatable and write transactions can take the write lock up front (``BEGIN IMMEDIATE``);
see :func:`write_session`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from recsys.errors import InvalidInputError, UnavailableError
from recsys.settings import DEFAULT_DATABASE_URL

logger = logging.getLogger(__name__)

DEFAULT_URL = DEFAULT_DATABASE_URL
"""Embedded default: one SQLite file under ``./var`` (relative to the working directory)."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
# synchronous=FULL: with WAL, NORMAL already survives a crash of the *process* (kill -9), because a
# committed transaction is in the WAL file in the OS page cache; but a power cut or kernel crash
# can then lose the last commits. An acknowledged event must survive any restart (DESIGN.md,
# "Storage"), so every commit syncs the WAL. The cost (one fsync per commit) is paid per batch,
# not per event, because an append of up to 1000 events is one transaction.
SQLITE_SYNCHRONOUS = "FULL"
POSTGRES_CONNECT_TIMEOUT_S = 10
_BEGIN_OPTION = "recsys_sqlite_begin"


class StoreConfigError(InvalidInputError):
    """A database URL that cannot be used (unparsable or an unsupported backend/driver)."""


class DatabaseUnavailableError(UnavailableError):
    """The database named by a valid URL cannot be reached or opened."""


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***`` (safe for logs and errors)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparsable: drop everything between "://" and "@" in case it holds credentials.
        head, sep, rest = str(url).partition("://")
        if sep and "@" in rest:
            return f"{head}://***@{rest.rpartition('@')[2]}"
        return str(url)


def normalize_url(url: str | None) -> URL:
    """Parse ``url`` (default :data:`DEFAULT_URL`) and pin the supported driver.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3).

    Raises
    ------
    StoreConfigError
        When the URL cannot be parsed or names a backend/driver the store does not support.
    """
    text = (url or DEFAULT_URL).strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise StoreConfigError(
            f"cannot parse database URL {mask_url(text)!r} ({exc}); expected "
            "'sqlite:///path/to/file.db' or 'postgresql+psycopg://user:password@host:5432/db'"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "postgresql":
        if "+" in parsed.drivername and driver != "psycopg":
            raise StoreConfigError(
                f"unsupported PostgreSQL driver {driver!r} in {mask_url(parsed)!r}; "
                "use 'postgresql+psycopg://' (psycopg 3) or plain 'postgresql://'"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if "+" in parsed.drivername and driver != "pysqlite":
            raise StoreConfigError(
                f"unsupported SQLite driver {driver!r} in {mask_url(parsed)!r}; use 'sqlite:///'"
            )
        return parsed
    raise StoreConfigError(
        f"unsupported database {backend!r} in {mask_url(parsed)!r}; "
        "the store supports SQLite ('sqlite:///file.db') and PostgreSQL ('postgresql://...')"
    )


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _install_sqlite_listeners(engine: Engine, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # SQLAlchemy emits BEGIN itself (see _begin) instead of sqlite3's legacy mode, which
        # does not begin a transaction for SELECT or DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal" and not memory:
                logger.warning(
                    "SQLite refused WAL mode (journal_mode=%s); durability is reduced", mode
                )
            cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        # Write transactions take the write lock at BEGIN: a deferred transaction that reads
        # first and writes later fails at once with SQLITE_BUSY when another writer committed
        # meanwhile, whereas BEGIN IMMEDIATE waits up to busy_timeout for its turn.
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(
    url: str | None = None,
    *,
    connect_args: dict[str, Any] | None = None,
    check: bool = True,
    **engine_kwargs: Any,
) -> Engine:
    """Create the store's engine for ``url``.

    Parameters
    ----------
    url : str, optional
        ``sqlite:///path.db`` (the folder is created), ``sqlite://`` (in memory, one shared
        connection; tests only) or ``postgresql[+psycopg]://user:password@host:port/db``.
        Defaults to :data:`DEFAULT_URL`.
    connect_args : dict, optional
        Passed to the driver, e.g. ``{"options": "-csearch_path=myschema"}`` for PostgreSQL.
    check : bool
        Open one connection now so an unreachable database fails here, with a clear message.
    **engine_kwargs
        Passed to :func:`sqlalchemy.create_engine` (``pool_size``, ``echo`` ...).

    Returns
    -------
    sqlalchemy.Engine

    Raises
    ------
    StoreConfigError
        The URL is unparsable or names an unsupported backend or driver.
    DatabaseUnavailableError
        ``check`` is true and the database cannot be reached or opened.
    """
    parsed = normalize_url(url)
    connect_args = dict(connect_args or {})
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        memory = _is_memory(parsed)
        if memory:
            engine_kwargs.setdefault("poolclass", StaticPool)
            connect_args.setdefault("check_same_thread", False)
        elif not parsed.query.get("uri"):
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(
                    f"cannot create the folder {str(folder)!r} for {mask_url(parsed)!r}: {exc}"
                ) from None
        engine = create_engine(parsed, connect_args=connect_args, **engine_kwargs)
        _install_sqlite_listeners(engine, memory)
    else:
        if "connect_timeout" not in parsed.query:
            connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        engine_kwargs.setdefault("pool_pre_ping", True)
        try:
            engine = create_engine(parsed, connect_args=connect_args, **engine_kwargs)
        except NoSuchModuleError as exc:
            raise StoreConfigError(f"{mask_url(parsed)!r}: {exc}") from None
    if check:
        check_connection(engine)
    logger.info("store engine ready: %s", mask_url(parsed))
    return engine


def check_connection(engine: Engine) -> None:
    """Open and close one connection; raise :class:`DatabaseUnavailableError` if that fails."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        password = engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        raise DatabaseUnavailableError(
            f"cannot connect to database {mask_url(engine.url)!r}: {reason}"
        ) from None


def analyze(engine: Engine, *tables: str) -> None:
    """On PostgreSQL, refresh the planner's statistics of ``tables`` now. Tables filled or grown
    by millions of rows in one go are read by sequential scans until autovacuum gets to them.
    SQLite's planner uses the indexes without statistics: nothing to do there."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ANALYZE {', '.join(tables)}")


def is_postgres(engine_or_session: Engine | Session) -> bool:
    """Whether the bound database is PostgreSQL (else SQLite)."""
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    return bind.dialect.name == "postgresql"


def _writer(engine: Engine) -> Engine:
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session in one write transaction, committed on exit (rolled back on error).

    The commit has happened when the ``with`` block is left normally: callers may acknowledge
    the write then. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (see module doc).
    """
    with Session(_writer(engine), expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads (one transaction, so every query sees the same snapshot)."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def dialect_insert(session: Session, table):
    """``INSERT`` construct of the session's dialect (for ``ON CONFLICT`` clauses)."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
