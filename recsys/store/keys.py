"""API keys with roles, stored as hashes.

A key is ``rk_`` followed by 43 random URL-safe characters (256 bits from ``secrets``). The
table keeps its SHA-256 and a short display prefix, never the key. A fast unsalted hash is
enough here: a key has 256 bits of entropy, so it cannot be guessed from its hash, and a
deterministic hash lets ``authenticate`` find the key by an indexed lookup. (Passwords, which
are guessable, would need a slow salted hash; keys chosen by people go through
:meth:`ApiKeyStore.ensure_admin`, which insists on a minimum length.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from recsys.errors import InvalidInputError, NotFoundError
from recsys.store.audit import record_audit
from recsys.store.db import read_session, write_session
from recsys.store.tables import ApiKey, utcnow

logger = logging.getLogger(__name__)

KEY_PREFIX = "rk_"
DISPLAY_CHARS = 10  # "rk_" + 7 random characters: enough to tell keys apart in a listing
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 512
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute


class Role(StrEnum):
    """What a key may do. ``admin`` satisfies every requirement; the others only their own."""

    ADMIN = "admin"
    MARKETER = "marketer"
    INGEST = "ingest"
    READ = "read"

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """``value`` as a Role, or ``InvalidInputError`` listing the valid roles."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(r.value for r in cls)
            raise InvalidInputError(f"unknown role {value!r}; expected one of {valid}") from None

    def satisfies(self, *required: Role | str) -> bool:
        """Whether a key with this role may do something that needs any of ``required``."""
        return self is Role.ADMIN or self in {Role.parse(r) for r in required}


def roles_satisfying(*required: Role | str) -> frozenset[Role]:
    """Every role that satisfies a requirement of any of ``required`` (always includes admin)."""
    return frozenset(r for r in Role if r.satisfies(*required))


def hash_key(plaintext: str) -> str:
    """SHA-256 hex digest of a key (see module doc for why unsalted is fine)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class ApiKeyNotFound(NotFoundError):
    """No key with the given id."""


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key without its secret."""

    id: int
    name: str
    role: Role
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """How audit records name this key: ``key:<id>:<prefix>``."""
        return f"key:{self.id}:{self.key_prefix}"


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id, row.name, Role(row.role), row.key_prefix, row.created_at, row.revoked_at,
        row.last_used_at,
    )  # fmt: skip


class ApiKeyStore:
    """Create, authenticate, list and revoke API keys.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self, plaintext: str, role: Role, name: str, actor: str | None) -> ApiKeyRecord:
        with write_session(self.engine) as session:
            row = ApiKey(
                name=name,
                role=role.value,
                key_prefix=plaintext[:DISPLAY_CHARS],
                key_hash=hash_key(plaintext),
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            record = _record(row)
            if actor is not None:
                record_audit(
                    session,
                    actor=actor,
                    action="key.create",
                    target=f"key:{record.id}",
                    details={"role": role.value, "name": name, "prefix": record.key_prefix},
                )
        logger.info("created %s key %d (%s…)", role.value, record.id, record.key_prefix)
        return record

    def create(
        self, role: Role | str, name: str = "", *, actor: str | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """Create a key; the plaintext is returned once and never stored.

        Parameters
        ----------
        role : Role or str
        name : str
            Free text to recognise the key by ("shop frontend").
        actor : str, optional
            When given, a ``key.create`` audit entry is written in the same transaction.

        Returns
        -------
        (str, ApiKeyRecord)
            The plaintext key (show it to the user once) and its stored record.
        """
        role = Role.parse(role)
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        return plaintext, self._insert(plaintext, role, name, actor)

    def ensure_admin(
        self, plaintext: str, name: str = "bootstrap admin"
    ) -> tuple[ApiKeyRecord, bool]:
        """Register a given admin key (e.g. ``RECSYS_ADMIN_KEY``) unless it is already stored.

        Returns ``(record, created)``. Safe to call at every start and from several processes at
        once. A key that was revoked stays revoked (and fails authentication).

        Raises
        ------
        ValueError
            The key is shorter than :data:`MIN_KEY_LENGTH` characters, or is already stored
            with another role.
        """
        plaintext = (plaintext or "").strip()
        if not MIN_KEY_LENGTH <= len(plaintext) <= MAX_KEY_LENGTH:
            raise ValueError(
                f"the admin key must have {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters "
                f"(got {len(plaintext)}); generate one with `recsys keys create --role admin`"
            )
        for _ in range(2):
            existing = self._find(hash_key(plaintext))
            if existing is not None:
                if existing.role is not Role.ADMIN:
                    raise ValueError(
                        f"the admin key is already stored as key {existing.id} with role "
                        f"{existing.role.value!r}"
                    )
                if not existing.active:
                    logger.warning("the configured admin key %d was revoked", existing.id)
                return existing, False
            try:
                record = self._insert(plaintext, Role.ADMIN, name, actor="system")
            except IntegrityError:  # another process registered it first
                continue
            return record, True
        raise RuntimeError("could not register the admin key")  # pragma: no cover

    def bootstrap(self, plaintext: str | None) -> str | None:
        """First-start admin key: register ``plaintext`` when given (see :meth:`ensure_admin`);
        otherwise, when no active admin key exists, create one and return it (print it once).

        Returns the generated plaintext, or ``None`` when nothing was generated.
        """
        if plaintext:
            self.ensure_admin(plaintext)
            return None
        if self.count(Role.ADMIN):
            return None
        generated, record = self.create(Role.ADMIN, "generated at first start", actor="system")
        logger.warning("no admin key configured: generated admin key %s…", record.key_prefix)
        return generated

    def _find(self, digest: str) -> ApiKeyRecord | None:
        with read_session(self.engine) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                return None
            return _record(row)

    def authenticate(self, plaintext: str | None) -> ApiKeyRecord | None:
        """The active key record for ``plaintext``, or ``None`` (unknown, revoked or malformed).

        ``last_used_at`` is refreshed at most once per :data:`LAST_USED_RESOLUTION`, so a busy
        key does not turn every request into a write.
        """
        if not plaintext or len(plaintext) > MAX_KEY_LENGTH:
            return None
        record = self._find(hash_key(plaintext))
        if record is None or not record.active:
            return None
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
            stale = now - LAST_USED_RESOLUTION
            stmt = (
                update(ApiKey)
                .where(ApiKey.id == record.id)
                .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale))
                .values(last_used_at=now)
            )
            try:
                with write_session(self.engine) as session:
                    session.execute(stmt)
            except OperationalError as exc:  # bookkeeping must not fail a valid request
                logger.warning("could not update last_used_at of key %d: %s", record.id, exc.orig)
        return record

    def revoke(self, key_id: int, *, actor: str | None = None) -> ApiKeyRecord:
        """Revoke key ``key_id`` (idempotent); returns its record.

        Raises
        ------
        ApiKeyNotFound
            No key has that id.
        """
        with write_session(self.engine) as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                raise ApiKeyNotFound(f"no API key with id {key_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                if actor is not None:
                    record_audit(
                        session,
                        actor=actor,
                        action="key.revoke",
                        target=f"key:{row.id}",
                        details={"role": row.role, "prefix": row.key_prefix},
                    )
            session.flush()
            record = _record(row)
        logger.info("revoked key %d", key_id)
        return record

    def get(self, key_id: int) -> ApiKeyRecord | None:
        """The record of key ``key_id``, or ``None``."""
        with read_session(self.engine) as session:
            row = session.get(ApiKey, key_id)
            return None if row is None else _record(row)

    def list(self, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """Every key (oldest first), without secrets."""
        stmt = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        with read_session(self.engine) as session:
            return [_record(row) for row in session.scalars(stmt)]

    def count(self, role: Role | str | None = None, *, active_only: bool = True) -> int:
        """Number of keys, optionally of one ``role``; revoked ones count if not ``active_only``."""
        stmt = select(func.count()).select_from(ApiKey)
        if role is not None:
            stmt = stmt.where(ApiKey.role == Role.parse(role).value)
        if active_only:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        with read_session(self.engine) as session:
            return int(session.scalar(stmt) or 0)
