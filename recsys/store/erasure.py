"""Erasure of one user's personal data ("right to be forgotten") and its twin, the export
("right of access"), from ONE registry.

Every store that keeps per-user rows registers, at import time of the module that owns the
table, an erase hook ``fn(session, user_id) -> rows_deleted`` AND an export hook
``fn(session, user_id) -> JSON-ready data`` under one name, so a table cannot be erased and
forgotten by the export (or the other way round)::

    from recsys.store.erasure import erasure_hooks, rows_exporter

    def _erase_members(session, user_id):
        stmt = delete(SegmentMember).where(SegmentMember.user_id == user_id)
        return session.execute(stmt).rowcount

    erasure_hooks.register("segment_members", _erase_members, rows_exporter(SegmentMember))

:func:`export_user` runs every export hook in one read transaction.

:func:`erase_user` runs every registered hook, writes the ``erasures`` receipt row and an
audit record, all in ONE transaction: either all of the user's rows are gone or none are.
The receipt and the audit record carry a SHA-256 hash of the user id, never the id, so
nothing left in the database names the user. :func:`drop_erased` removes those users from a
frame; ``EventStore.export_frame`` and training use it, so training never sees an erased user
again, even if old events are re-delivered later.

In-memory state (session vectors, caches in the serving process) is not a database hook:
the serving layer clears it itself after :func:`erase_user` returns.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from recsys.errors import InvalidInputError
from recsys.store.audit import record_audit
from recsys.store.db import read_session, write_session
from recsys.store.tables import AuditEntry, Erasure, Event, UserProfile, utcnow

logger = logging.getLogger(__name__)

ErasureHook = Callable[[Session, str], int]
ExportHook = Callable[[Session, str], Any]
FrameT = TypeVar("FrameT")
ERASE_ACTION = "user.erase"


def user_hash(user_id: str) -> str:
    """SHA-256 (hex) of the user id: how erased users are remembered without their id.

    A plain hash is pseudonymous, not anonymous: whoever can guess an id can confirm it was
    erased. That is the purpose here (exclude re-delivered events from training).
    """
    return hashlib.sha256(str(user_id).encode("utf-8")).hexdigest()


class ErasureRegistry:
    """Named erase hooks, each with its export twin, run in registration order."""

    def __init__(self) -> None:
        self._hooks: dict[str, ErasureHook] = {}
        self._exports: dict[str, ExportHook] = {}

    def register(
        self,
        name: str,
        hook: ErasureHook,
        export: ExportHook | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Add ``hook`` (erase) and ``export`` under ``name``; a second registration of a name
        needs ``replace=True``. Every hook of the process registry must have an export (a test
        asserts it); ``None`` is only for ad-hoc registries."""
        if not callable(hook):
            raise TypeError(f"erasure hook {name!r} is not callable")
        if export is not None and not callable(export):
            raise TypeError(f"export hook {name!r} is not callable")
        if name in self._hooks and not replace and self._hooks[name] is not hook:
            raise ValueError(f"an erasure hook named {name!r} is already registered")
        self._hooks[name] = hook
        if export is not None:
            self._exports[name] = export
        else:
            self._exports.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove the hook ``name`` and its export (no error when absent)."""
        self._hooks.pop(name, None)
        self._exports.pop(name, None)

    def names(self) -> list[str]:
        """Registered hook names, in the order they run."""
        return list(self._hooks)

    def items(self) -> list[tuple[str, ErasureHook]]:
        """``(name, erase hook)`` pairs, in the order they run."""
        return list(self._hooks.items())

    def export_names(self) -> list[str]:
        """Names that have an export hook, in registration order."""
        return [name for name in self._hooks if name in self._exports]

    def exports(self) -> list[tuple[str, ExportHook]]:
        """``(name, export hook)`` pairs, in registration order."""
        return [(name, self._exports[name]) for name in self.export_names()]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def rows_exporter(*models: type, column: str = "user_id") -> ExportHook:
    """An export hook returning every row of ``models`` whose ``column`` equals the user id.

    One model: a list of row dicts; several: ``{table name: [row dicts]}``. Timestamps become
    ISO-8601 strings.
    """

    def export(session: Session, user_id: str) -> Any:
        out = {}
        for model in models:
            attrs = model.__mapper__.column_attrs
            stmt = select(model).where(getattr(model, column) == user_id)
            out[model.__tablename__] = [
                {a.key: _plain(getattr(row, a.key)) for a in attrs} for row in session.scalars(stmt)
            ]
        return out[models[0].__tablename__] if len(models) == 1 else out

    return export


def _erase_events(session: Session, user_id: str) -> int:
    return session.execute(delete(Event).where(Event.user_id == user_id)).rowcount


def _erase_profile(session: Session, user_id: str) -> int:
    return session.execute(delete(UserProfile).where(UserProfile.user_id == user_id)).rowcount


def _pseudonymise_audit(session: Session, user_id: str) -> int:
    # The audit trail must stay, but not name the user: targets become "user:<hash>".
    stmt = (
        update(AuditEntry)
        .where(AuditEntry.target.in_([user_id, f"user:{user_id}"]))
        .values(target=f"user:{user_hash(user_id)}")
    )
    return session.execute(stmt).rowcount


erasure_hooks = ErasureRegistry()
"""The process-wide registry :func:`erase_user` uses unless given another."""


def _export_audit(session: Session, user_id: str) -> list[dict[str, Any]]:
    stmt = select(AuditEntry).where(AuditEntry.target.in_([user_id, f"user:{user_id}"]))
    return [
        {"at": _plain(e.at), "actor": e.actor, "action": e.action, "details": e.details}
        for e in session.scalars(stmt.order_by(AuditEntry.id))
    ]


erasure_hooks.register("events", _erase_events, rows_exporter(Event))
erasure_hooks.register("user_profiles", _erase_profile, rows_exporter(UserProfile))
erasure_hooks.register("audit_log_targets", _pseudonymise_audit, _export_audit)


def erased_hashes(session: Session) -> set[str]:
    """Hashes of every erased user."""
    return set(session.scalars(select(Erasure.user_hash).distinct()))


def drop_erased(frame: FrameT, hashes: Collection[str]) -> FrameT:
    """``frame`` without the rows of erased users (the store's export and training both use it).

    Parameters
    ----------
    frame : DataFrame or None
        Any table with a ``user_id`` column (events, users); returned as is when it has none.
    hashes : collection of str
        :func:`user_hash` es of the erased users (:func:`erased_hashes`).

    Returns
    -------
    DataFrame or None
        The rows of users not erased, re-indexed from 0; ``frame`` itself when nobody was dropped.
    """
    if frame is None or not hashes or "user_id" not in frame or not len(frame):
        return frame
    users = frame["user_id"].astype(str)
    gone = {u for u in users.unique() if user_hash(u) in hashes}
    if not gone:
        return frame
    logger.info("dropped the rows of %d erased user(s)", len(gone))
    return frame[~users.isin(gone)].reset_index(drop=True)


def is_erased(session: Session, user_id: str) -> bool:
    """Whether ``user_id`` has been erased before."""
    stmt = select(Erasure.receipt_id).where(Erasure.user_hash == user_hash(user_id)).limit(1)
    return session.scalar(stmt) is not None


def erase_user(
    engine: Engine,
    user_id: str,
    actor: str,
    *,
    registry: ErasureRegistry | None = None,
) -> dict[str, Any]:
    """Delete every stored row of ``user_id`` and record a receipt, in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user_id : str
        The user to erase (erasing an unknown user still yields a receipt with zero counts).
    actor : str
        Who asked (an API key id/prefix, ``"cli"`` ...); written to the audit log.
    registry : ErasureRegistry, optional
        Defaults to :data:`erasure_hooks`.

    Returns
    -------
    dict
        ``receipt_id``, ``user_id``, ``user_hash``, ``erased_at`` (ISO-8601 UTC) and
        ``deleted`` (rows per hook name). Committed when this returns.
    """
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError("user_id must be a non-empty string")
    hooks = (registry or erasure_hooks).items()
    receipt_id, hashed, at = uuid.uuid4().hex, user_hash(user_id), utcnow()
    deleted: dict[str, int] = {}
    with write_session(engine) as session:
        if engine.dialect.name == "sqlite":
            # Freed pages are zeroed, so the deleted rows cannot be read back from the file.
            session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
        for name, hook in hooks:
            deleted[name] = int(hook(session, user_id) or 0)
        session.add(Erasure(receipt_id=receipt_id, user_hash=hashed, erased_at=at, counts=deleted))
        record_audit(
            session,
            actor=actor,
            action=ERASE_ACTION,
            target=f"user:{hashed}",
            details={"receipt_id": receipt_id, "deleted": deleted},
        )
    logger.info("erased user %s… (receipt %s): %s", hashed[:12], receipt_id, deleted)
    return {
        "receipt_id": receipt_id,
        "user_id": user_id,
        "user_hash": hashed,
        "erased_at": at.isoformat(),
        "deleted": deleted,
    }


def export_user(
    engine: Engine, user_id: str, *, registry: ErasureRegistry | None = None
) -> dict[str, Any]:
    """Everything the registered tables hold about ``user_id``: ``{hook name: data}``.

    Built from the same registry as :func:`erase_user`, so what is erased is what is exported.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user_id : str
    registry : ErasureRegistry, optional
        Defaults to :data:`erasure_hooks`.

    Raises
    ------
    InvalidInputError
        ``user_id`` is empty.
    """
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError("user_id must be a non-empty string")
    hooks = (registry or erasure_hooks).exports()
    with read_session(engine) as session:
        return {name: hook(session, user_id) for name, hook in hooks}
