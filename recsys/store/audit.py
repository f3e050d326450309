"""Audit log of administrative actions (key creation and revocation, erasure, model reload ...).

Secrets never reach the table: callers pass key ids and display prefixes, and as a second line
of defence :func:`redact` replaces anything that looks like an API key, and the value of any
field named like a secret (``key``, ``token``, ``password`` ...), before a record is written.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recsys.store.db import read_session, write_session
from recsys.store.tables import AuditEntry, utcnow

logger = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"\brk_[A-Za-z0-9_-]{16,}")
_SECRET_NAMES = re.compile(
    r"^(api_?key|key|plaintext|secret|token|password|authorization)$", re.IGNORECASE
)
REDACTED = "***"


def redact(value: Any) -> Any:
    """``value`` with API keys and secret-named fields masked (dicts and lists recursively)."""
    if isinstance(value, str):
        return KEY_PATTERN.sub(lambda m: m.group(0)[:8] + "…" + REDACTED, value)
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_NAMES.match(str(k)) and v else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry as read back."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry inside the caller's transaction (commits with it)."""
    if not action:
        raise ValueError("audit action must not be empty")
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=redact(str(actor or "unknown")),
            action=action,
            target=redact(str(target or "")),
            details=redact(dict(details or {})),
        )
    )


class AuditLog:
    """Write and read the audit log.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None
    ) -> None:
        """Write one entry in its own transaction (committed when this returns).

        Parameters
        ----------
        actor : str
            Who acted: an API key's id/prefix (never the key), ``"cli"``, ``"system"``.
        action : str
            Dotted verb such as ``"model.reload"``, ``"key.create"``, ``"user.erase"``.
        target : str
            What was acted on (a key id, a model version, ``user:<hash>``).
        details : dict, optional
            JSON-serialisable context; secrets are redacted.
        """
        with write_session(self.engine) as session:
            record_audit(session, actor=actor, action=action, target=target, details=details)
        logger.info("audit: %s %s %s", actor, action, target)

    def list(self, limit: int = 100, action: str | None = None) -> list[AuditRecord]:
        """The newest ``limit`` entries (optionally of one ``action``), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        with read_session(self.engine) as session:
            return [
                AuditRecord(e.id, e.at, e.actor, e.action, e.target, dict(e.details or {}))
                for e in session.scalars(stmt)
            ]
