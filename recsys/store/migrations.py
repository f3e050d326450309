"""Create and migrate the store's schema: an ordered list of small, idempotent steps.

``init_schema(engine)`` runs at every start. In one transaction it takes a lock (PostgreSQL:
an advisory lock per schema; SQLite: ``BEGIN IMMEDIATE``), creates ``schema_version`` if
needed, applies every step newer than the recorded version in order, and records each one.
Two processes starting at once therefore apply each step exactly once; a failing step rolls
the whole upgrade back.

Adding to the schema (later issues)
-----------------------------------
1. Add or change the model in :mod:`recsys.store.tables` (or a module of your own that
   subclasses ``tables.Base``, imported before ``init_schema`` runs).
2. Append ``Migration(next_version, "what it does", fn)`` to :data:`MIGRATIONS`, where
   ``fn(conn)`` uses :func:`create_tables` / :func:`add_column`. Steps must be idempotent:
   on a fresh database the tables are created from the *current* models by an earlier step,
   so a later "add column" step finds the column already there (the helpers check first).
   Never edit or reorder a released step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Engine, func, inspect, select, text

from recsys.errors import ConflictError
from recsys.store.db import write_session
from recsys.store.tables import Base, SchemaVersion

logger = logging.getLogger(__name__)


class SchemaVersionError(ConflictError, RuntimeError):
    """The database was migrated by newer code than this one."""


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply(conn)`` runs inside the upgrade transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def create_tables(conn: Connection, *names: str) -> None:
    """Create the named tables (and their indexes) from the models when they are missing."""
    for name in names:
        Base.metadata.tables[name].create(conn, checkfirst=True)


def add_column(conn: Connection, table: str, column: Column) -> None:
    """``ALTER TABLE table ADD COLUMN`` unless the column exists (idempotent)."""
    present = {c["name"] for c in inspect(conn).get_columns(table)}
    if column.name in present:
        return
    ddl = column.type.compile(dialect=conn.dialect)
    null = "" if column.nullable else " NOT NULL"
    conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {ddl}{null}')


def _initial(conn: Connection) -> None:
    create_tables(conn, "events", "user_profiles", "api_keys", "audit_log", "erasures")


def _catalogue_and_customers(conn: Connection) -> None:
    create_tables(conn, "items")
    profiles = Base.metadata.tables["user_profiles"]
    add_column(conn, "user_profiles", profiles.c.time_zone)
    add_column(conn, "user_profiles", profiles.c.updated_at)


def _segments(conn: Connection) -> None:
    from recsys.store import segments  # registers its tables on Base.metadata

    create_tables(conn, *segments.TABLES)


def _campaigns(conn: Connection) -> None:
    from recsys.store import campaigns  # registers its tables on Base.metadata

    create_tables(conn, *campaigns.TABLES)


def _catalogue_feed(conn: Connection) -> None:
    items = Base.metadata.tables["items"]
    add_column(conn, "items", items.c.change_seq)
    for index in items.indexes:
        if index.name == "ix_items_change_seq":
            index.create(conn, checkfirst=True)


def _privacy(conn: Connection) -> None:
    from recsys.store import key_rates, privacy  # register their tables on Base.metadata

    create_tables(conn, *privacy.TABLES, key_rates.KeyRateRow.__tablename__)


def _segment_path_tables(conn: Connection) -> None:
    from recsys.store import segments  # registers its tables on Base.metadata

    members = segments.SegmentMember.__table__
    # (user_id, segment_id) replaces (user_id): it also answers which segments a customer is in
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_segment_members_user")
    if conn.dialect.name == "sqlite" and _has_rowid(conn, members.name):
        # WITHOUT ROWID: a membership is one entry in its primary key, not a row plus that key
        conn.exec_driver_sql(f"ALTER TABLE {members.name} RENAME TO {members.name}_old")
        for index in members.indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        members.create(conn)
        columns = ", ".join(c.name for c in members.columns)
        conn.exec_driver_sql(
            f"INSERT INTO {members.name} ({columns}) SELECT {columns} FROM {members.name}_old"
        )
        conn.exec_driver_sql(f"DROP TABLE {members.name}_old")
    for table in (members, segments.SegmentRow.__table__):
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _has_rowid(conn: Connection, table: str) -> bool:
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    return "WITHOUT ROWID" not in sql.upper()


MIGRATIONS: list[Migration] = [
    Migration(1, "events, user_profiles, api_keys, audit_log, erasures", _initial),
    Migration(2, "items; user_profiles.time_zone and updated_at", _catalogue_and_customers),
    Migration(3, "customer_aggregates and segment tables", _segments),
    Migration(4, "campaign tables", _campaigns),
    Migration(5, "items.change_seq (the catalogue change feed)", _catalogue_feed),
    Migration(6, "privacy_scrubs, consent_history, api_key_rates", _privacy),
    Migration(
        7,
        "segment_members WITHOUT ROWID (SQLite); covering indexes of the per-event segment path",
        _segment_path_tables,
    ),
]
"""Every schema step in order; versions are 1, 2, 3 ... without gaps."""


def latest_version() -> int:
    """The schema version this code brings a database to."""
    return MIGRATIONS[-1].version if MIGRATIONS else 0


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Serialises concurrent starts against the same schema (released at commit).
        conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtext('recsys.init_schema:' || current_schema()))"
            )
        )
    # SQLite: write_session already holds the write lock (BEGIN IMMEDIATE).


def current_version(engine: Engine) -> int:
    """The recorded schema version (0 for an empty database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(SchemaVersion.__tablename__):
            return 0
        return int(conn.execute(select(func.max(SchemaVersion.version))).scalar() or 0)


def init_schema(engine: Engine) -> int:
    """Create or upgrade the schema to :func:`latest_version`; return that version.

    Raises
    ------
    SchemaVersionError
        The database records a version newer than this code knows.
    """
    versions = [m.version for m in MIGRATIONS]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaVersionError(f"MIGRATIONS must be numbered 1..n in order, got {versions}")
    with write_session(engine) as session:
        conn = session.connection()
        _lock(conn)
        create_tables(conn, SchemaVersion.__tablename__)
        done = conn.execute(select(SchemaVersion.version)).scalars().all()
        current = max(done, default=0)
        if current > latest_version():
            raise SchemaVersionError(
                f"the database is at schema version {current} but this code only knows up to "
                f"{latest_version()}; upgrade recsys before using this database"
            )
        for step in MIGRATIONS:
            if step.version <= current:
                continue
            logger.info("applying schema step %d: %s", step.version, step.description)
            step.apply(conn)
            session.add(SchemaVersion(version=step.version, description=step.description))
            session.flush()
    return latest_version()
