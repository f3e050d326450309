"""Engines, URLs, SQLite settings and schema migrations."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, String, inspect, select

from recsys.store import (
    DatabaseUnavailableError,
    SchemaVersionError,
    StoreConfigError,
    init_schema,
    make_engine,
    mask_url,
    normalize_url,
    read_session,
    write_session,
)
from recsys.store import migrations as migrations_module
from recsys.store.migrations import Migration, add_column, current_version, latest_version
from recsys.store.tables import Base, SchemaVersion


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
        (None, "sqlite:///var/recsys.db"),
    ],
)
def test_urls_are_normalised(url, expected):
    assert mask_url(normalize_url(url)) == expected


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://u:secret@h/db", "unsupported database 'mysql'"),
        ("postgresql+asyncpg://u:secret@h/db", "unsupported PostgreSQL driver 'asyncpg'"),
        ("sqlite+aiosqlite:///x.db", "unsupported SQLite driver"),
        ("not a url at all", "cannot parse database URL"),
        ("://u:secret@host", "cannot parse database URL"),
    ],
)
def test_unusable_urls_fail_clearly_without_the_password(url, message):
    with pytest.raises(StoreConfigError, match=message) as err:
        make_engine(url)
    assert "secret" not in str(err.value)


def test_unreachable_postgres_names_the_masked_url():
    url = "postgresql://bob:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(DatabaseUnavailableError) as err:
        make_engine(url, connect_args={"connect_timeout": 2})
    message = str(err.value)
    assert "postgresql+psycopg://bob:***@127.0.0.1:1/nowhere" in message
    assert "hunter2" not in message


def test_unopenable_sqlite_file_fails_clearly(tmp_path):
    (tmp_path / "taken.db").mkdir()  # a directory where the database file should be
    with pytest.raises(DatabaseUnavailableError, match="taken.db"):
        make_engine(f"sqlite:///{tmp_path}/taken.db")
    (tmp_path / "file").write_text("")
    with pytest.raises(DatabaseUnavailableError, match="cannot create the folder"):
        make_engine(f"sqlite:///{tmp_path}/file/sub/x.db")


def test_default_url_creates_var_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = make_engine()
    try:
        assert (tmp_path / "var" / "recsys.db").exists()
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_and_safe_settings(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/a/b.db", pool_size=2)
    try:
        with engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 10_000
    finally:
        engine.dispose()


def test_memory_sqlite_works_for_quick_use():
    engine = make_engine("sqlite://")
    assert init_schema(engine) == latest_version()
    assert current_version(engine) == latest_version()


def test_init_schema_creates_every_table_once(db):
    engine = db.engine()
    assert current_version(engine) == 0
    assert init_schema(engine) == latest_version()
    assert init_schema(engine) == latest_version()
    names = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= names
    with read_session(engine) as session:
        versions = session.scalars(select(SchemaVersion.version)).all()
    assert versions == list(range(1, latest_version() + 1))


def test_concurrent_starts_apply_each_step_once(db):
    engines = [db.engine() for _ in range(3)]
    barrier, errors = threading.Barrier(len(engines)), []

    def start(engine):
        try:
            barrier.wait()
            init_schema(engine)
        except Exception as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with read_session(engines[0]) as session:
        versions = session.scalars(select(SchemaVersion.version)).all()
    assert versions == list(range(1, latest_version() + 1))


def test_a_later_migration_step_upgrades_and_is_idempotent(db, monkeypatch):
    engine = db.engine()
    init_schema(engine)
    nxt = latest_version() + 1
    step = Migration(
        nxt, "audit note", lambda conn: add_column(conn, "audit_log", Column("note", String(40)))
    )
    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*migrations_module.MIGRATIONS, step])
    assert init_schema(engine) == nxt
    assert "note" in {c["name"] for c in inspect(engine).get_columns("audit_log")}
    with write_session(engine) as session:  # the step re-run on a database that has the column
        add_column(session.connection(), "audit_log", Column("note", String(40)))
    assert init_schema(engine) == nxt and current_version(engine) == nxt


def test_a_database_from_newer_code_is_refused(db):
    engine = db.engine()
    init_schema(engine)
    with write_session(engine) as session:
        session.add(SchemaVersion(version=99, description="from the future"))
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        init_schema(engine)


def test_a_failing_step_rolls_the_upgrade_back(db, monkeypatch):
    def boom(conn):
        add_column(conn, "events", Column("half_done", String(10)))
        raise RuntimeError("step 2 failed")

    engine = db.engine()
    init_schema(engine)
    now = latest_version()
    monkeypatch.setattr(
        migrations_module,
        "MIGRATIONS",
        [*migrations_module.MIGRATIONS, Migration(now + 1, "x", boom)],
    )
    with pytest.raises(RuntimeError, match="step 2 failed"):
        init_schema(engine)
    assert current_version(engine) == now
    assert "half_done" not in {c["name"] for c in inspect(engine).get_columns("events")}


def test_step_7_gives_a_store_of_step_6_the_covering_segment_indexes(db):
    engine = db.engine()
    init_schema(engine)
    # A store as step 6 left it: memberships in a rowid table (SQLite) with an index on
    # user_id alone, no index on segments.
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TABLE segment_members")
            conn.exec_driver_sql(
                "CREATE TABLE segment_members (segment_id VARCHAR(64) NOT NULL, "
                "user_id VARCHAR(255) NOT NULL, entered_at DATETIME NOT NULL, score FLOAT, "
                "PRIMARY KEY (segment_id, user_id))"
            )
        else:
            conn.exec_driver_sql("DROP INDEX ix_segment_members_user_segment")
        conn.exec_driver_sql("DROP INDEX ix_segments_updated_at")
        conn.exec_driver_sql("CREATE INDEX ix_segment_members_user ON segment_members (user_id)")
        conn.execute(SchemaVersion.__table__.delete().where(SchemaVersion.version == 7))
        conn.exec_driver_sql(
            "INSERT INTO segment_members (segment_id, user_id, entered_at) "
            "VALUES ('s1', 'u1', '2024-01-01 00:00:00.000000')"
        )
    assert current_version(engine) == 6
    assert init_schema(engine) == latest_version() >= 7

    def indexes(table):
        return {i["name"]: i["column_names"] for i in inspect(engine).get_indexes(table)}

    covering = {"ix_segment_members_user_segment": ["user_id", "segment_id"]}
    assert indexes("segment_members") == covering
    assert indexes("segments") == {"ix_segments_updated_at": ["updated_at"]}
    with engine.connect() as conn:  # the rows are kept
        rows = conn.exec_driver_sql("SELECT segment_id, user_id FROM segment_members").all()
    assert [tuple(r) for r in rows] == [("s1", "u1")]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'segment_members'"
            ).scalar_one()
        assert sql.rstrip().upper().endswith("WITHOUT ROWID")
    assert init_schema(engine) == latest_version()  # idempotent
