"""API keys, roles and the audit log on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from recsys.store import ApiKeyNotFound, AuditLog, Role, read_session, redact, roles_satisfying
from recsys.store.db import write_session
from recsys.store.keys import ApiKeyStore
from recsys.store.tables import ApiKey, AuditEntry, Base


def _all_stored_text(engine) -> str:
    """Every value of every table, as one string."""
    parts = []
    with read_session(engine) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_create_authenticate_revoke(store):
    plaintext, record = store.keys.create("ingest", "shop frontend")
    assert plaintext.startswith("rk_") and len(plaintext) > 40
    assert record.role is Role.INGEST and record.active and record.key_prefix == plaintext[:10]
    found = store.keys.authenticate(plaintext)
    assert found is not None and found.id == record.id and found.role is Role.INGEST
    assert store.keys.authenticate(plaintext + "x") is None
    assert store.keys.authenticate("") is None and store.keys.authenticate(None) is None
    assert store.keys.authenticate("rk_" + "a" * 5000) is None

    revoked = store.keys.revoke(record.id, actor="key:1:rk_admin")
    assert not revoked.active
    assert store.keys.authenticate(plaintext) is None
    assert store.keys.revoke(record.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(ApiKeyNotFound, match="999"):
        store.keys.revoke(999)


def test_keys_are_stored_hashed_never_in_plaintext(engine, store, caplog):
    caplog.set_level(logging.DEBUG)
    plaintext, record = store.keys.create("admin", "ops", actor="cli")
    store.keys.authenticate(plaintext)
    store.keys.revoke(record.id, actor="cli")
    given = "my-very-own-admin-key-0123456789"
    store.keys.ensure_admin(given)
    store.keys.authenticate(given)
    with read_session(engine) as session:
        row = session.get(ApiKey, record.id)
        assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    stored = _all_stored_text(engine)
    for secret in (plaintext, given):
        assert secret not in stored
        assert secret not in caplog.text
    assert record.key_prefix in stored  # the display prefix is what identifies a key


def test_roles():
    assert Role.ADMIN.satisfies(Role.READ) and Role.ADMIN.satisfies("marketer")
    assert Role.READ.satisfies("read") and not Role.READ.satisfies(Role.INGEST)
    assert Role.MARKETER.satisfies(Role.READ, Role.MARKETER)
    assert roles_satisfying(Role.INGEST) == {Role.ADMIN, Role.INGEST}
    assert roles_satisfying("read", "marketer") == {Role.ADMIN, Role.READ, Role.MARKETER}
    assert Role.parse(" Admin ") is Role.ADMIN
    with pytest.raises(ValueError, match="expected one of admin, marketer, ingest, read"):
        Role.parse("root")


def test_list_and_count(store):
    for role in ("read", "read", "ingest", "marketer"):
        store.keys.create(role)
    _, gone = store.keys.create("read")
    store.keys.revoke(gone.id)
    assert store.keys.count() == 4
    assert store.keys.count("read") == 2
    assert store.keys.count(Role.READ, active_only=False) == 3
    assert store.keys.count(Role.ADMIN) == 0
    listed = store.keys.list()
    assert [k.role.value for k in listed] == ["read", "read", "ingest", "marketer", "read"]
    assert len(store.keys.list(include_revoked=False)) == 4
    assert store.keys.get(gone.id).revoked_at is not None and store.keys.get(12345) is None
    with pytest.raises(ValueError, match="unknown role"):
        store.keys.create("superuser")


def test_ensure_admin_is_idempotent(store_db, store):
    given = "bootstrap-admin-key-from-env-0001"
    record, created = store.keys.ensure_admin(given)
    assert created and record.role is Role.ADMIN
    # A second process starting against the same database registers nothing new.
    again, created_again = ApiKeyStore(store_db.engine()).ensure_admin(given)
    assert not created_again and again.id == record.id
    assert store.keys.count(Role.ADMIN) == 1
    assert store.keys.authenticate(given).id == record.id
    assert [e.action for e in store.audit.list()] == ["key.create"]
    with pytest.raises(ValueError, match="16 to 512 characters"):
        store.keys.ensure_admin("short")
    plaintext, reader = store.keys.create("read")
    with pytest.raises(ValueError, match="role 'read'"):
        store.keys.ensure_admin(plaintext)
    store.keys.revoke(record.id)
    assert store.keys.ensure_admin(given) == (store.keys.get(record.id), False)
    assert store.keys.authenticate(given) is None  # revoked stays revoked


def test_bootstrap_generates_an_admin_key_once(store):
    generated = store.keys.bootstrap(None)
    assert generated and store.keys.authenticate(generated).role is Role.ADMIN
    assert store.keys.bootstrap(None) is None
    assert store.keys.count(Role.ADMIN) == 1


def test_last_used_is_written_at_most_once_a_minute(engine, store):
    plaintext, record = store.keys.create("read")
    assert record.last_used_at is None
    first = store.keys.authenticate(plaintext)
    stamped = store.keys.get(record.id).last_used_at
    assert stamped is not None and first is not None
    store.keys.authenticate(plaintext)
    assert store.keys.get(record.id).last_used_at == stamped
    with write_session(engine) as session:  # pretend the last use was two minutes ago
        old = stamped - timedelta(minutes=2)
        session.execute(update(ApiKey).where(ApiKey.id == record.id).values(last_used_at=old))
    store.keys.authenticate(plaintext)
    assert store.keys.get(record.id).last_used_at > stamped


def test_audit_log_records_and_lists(engine):
    audit = AuditLog(engine)
    audit.record("key:1:rk_abcdefg", "model.reload", "models:/recsys/3", {"from": 2, "to": 3})
    audit.record("cli", "key.create", "key:2", {"role": "read"})
    audit.record("key:1:rk_abcdefg", "model.reload", "models:/recsys/4", {"from": 3, "to": 4})
    newest = audit.list()
    assert [e.target for e in newest] == ["models:/recsys/4", "key:2", "models:/recsys/3"]
    assert newest[0].details == {"from": 3, "to": 4} and newest[0].at.tzinfo is not None
    assert [e.target for e in audit.list(action="model.reload", limit=1)] == ["models:/recsys/4"]
    with pytest.raises(ValueError, match="action"):
        audit.record("cli", "", "x")


def test_audit_never_stores_secrets(engine, store):
    plaintext, _ = store.keys.create("read")
    store.audit.record(
        "cli",
        "key.debug",
        f"oops {plaintext}",
        {"api_key": "anything", "nested": [{"token": "t0k3n", "note": f"got {plaintext}"}]},
    )
    with read_session(engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "key.debug")).one()
    assert plaintext not in entry.target and plaintext[:8] in entry.target
    assert entry.details["api_key"] == "***"
    assert entry.details["nested"][0]["token"] == "***"
    assert plaintext not in str(entry.details)
    assert redact({"password": "", "n": 1}) == {"password": "", "n": 1}
