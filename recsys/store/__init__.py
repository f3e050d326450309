"""Durable store: events, user profiles and customers, the catalogue, API keys, audit log and
erasure (SQLite or PostgreSQL).

Typical use::

    from recsys.store import Store

    store = Store.open("sqlite:///var/recsys.db")   # or postgresql://user@host/db
    store.events.append(records)                    # committed when it returns
    store.items.upsert([{"item_id": "i1", "stock": 0}])
    store.customers.put("u42", {"email": "a@example.com", "consents": {"email": True}})
    plaintext, record = store.keys.create("ingest", "shop frontend", actor="cli")
    receipt = store.erase_user("u42", actor=record.actor)
"""

from recsys.store.audit import AuditLog, AuditRecord, record_audit, redact
from recsys.store.catalogue import (
    ITEM_FIELDS,
    ITEM_RECORDS,
    CatalogueItemNotFound,
    ItemStore,
    UpsertResult,
)
from recsys.store.customers import CUSTOMER_FIELDS, USER_RECORDS, CustomerStore
from recsys.store.db import (
    DEFAULT_URL,
    DatabaseUnavailableError,
    StoreConfigError,
    make_engine,
    mask_url,
    normalize_url,
    read_session,
    write_session,
)
from recsys.store.erasure import (
    ErasureHook,
    ErasureRegistry,
    drop_erased,
    erase_user,
    erasure_hooks,
    is_erased,
    user_hash,
)
from recsys.store.events import AppendResult, EventStore
from recsys.store.keys import ApiKeyNotFound, ApiKeyRecord, ApiKeyStore, Role, roles_satisfying
from recsys.store.migrations import MIGRATIONS, Migration, SchemaVersionError, init_schema
from recsys.store.profiles import ProfileStore
from recsys.store.store import Store, read_erased_hashes
from recsys.store.tables import Base

__all__ = [
    "CUSTOMER_FIELDS",
    "DEFAULT_URL",
    "ITEM_FIELDS",
    "ITEM_RECORDS",
    "USER_RECORDS",
    "MIGRATIONS",
    "ApiKeyNotFound",
    "ApiKeyRecord",
    "ApiKeyStore",
    "AppendResult",
    "AuditLog",
    "AuditRecord",
    "Base",
    "CatalogueItemNotFound",
    "CustomerStore",
    "DatabaseUnavailableError",
    "ErasureHook",
    "ErasureRegistry",
    "EventStore",
    "ItemStore",
    "Migration",
    "ProfileStore",
    "Role",
    "SchemaVersionError",
    "Store",
    "StoreConfigError",
    "UpsertResult",
    "drop_erased",
    "erase_user",
    "erasure_hooks",
    "init_schema",
    "is_erased",
    "make_engine",
    "mask_url",
    "normalize_url",
    "read_erased_hashes",
    "read_session",
    "record_audit",
    "redact",
    "roles_satisfying",
    "user_hash",
    "write_session",
]
