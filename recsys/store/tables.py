"""The store's tables as SQLAlchemy 2 typed declarative models.

The shape here is the *current* schema; :mod:`recsys.store.migrations` brings an existing
database up to it. Timestamps are timezone-aware UTC in Python on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from recsys.data.event_check import EVENT_ID_LENGTH, ID_LENGTH  # what a valid event may hold

ROLES = ("admin", "marketer", "ingest", "read")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are converted to UTC
    and stored naive (text in one fixed format, which also sorts and compares correctly).
    Naive input is rejected: a timestamp without a zone is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONObject = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an "INTEGER PRIMARY KEY"; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every store table (``Base.metadata`` lists them all)."""


class SchemaVersion(Base):
    """One row per applied migration step."""

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """One user event, as ingested (canonical columns of ``recsys.data.schemas.EVENTS``)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_time", "user_id", "timestamp"),
        Index("ix_events_time", "timestamp"),
        CheckConstraint("quantity >= 0", name="ck_events_quantity"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Client-chosen id: re-delivering an event with the same id is skipped (idempotent ingest).
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_LENGTH), unique=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    item_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    event_type: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    quantity: Mapped[int] = mapped_column(BigInteger, default=1)
    value: Mapped[float | None] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserProfile(Base):
    """Per-user attributes plus aggregates kept current by every event append."""

    __tablename__ = "user_profiles"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    country: Mapped[str | None] = mapped_column(String(64))
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA name, e.g. Europe/Berlin
    consents: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)
    purchase_count: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[float] = mapped_column(Float, default=0.0)
    # When the customer attributes (not the aggregates) were last written.
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Item(Base):
    """One catalogue item; ``updated_at`` lets readers pick up changes since a point in time."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_updated_at", "updated_at"),
        Index("ix_items_change_seq", "change_seq"),
        CheckConstraint("stock >= 0", name="ck_items_stock"),
    )

    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    price: Mapped[float | None] = mapped_column(Float)
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    stock: Mapped[int | None] = mapped_column(BigInteger)  # stock level, when the shop sends one
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: deleted from the shop
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # commit-ordered change number (recsys.store.catalogue_feed); NULL: written before step 5
    change_seq: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key: only a hash and a short display prefix are stored, never the key."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")", name="ck_api_keys_role"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One audited action (who did what to which target)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)


class Erasure(Base):
    """Receipt of one user erasure. Holds a hash of the user id, never the id itself."""

    __tablename__ = "erasures"

    receipt_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_hash: Mapped[str] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
