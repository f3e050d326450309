"""Campaign tables: definitions, templates, enrolments, due steps, sends, messages, webhook dead
letters and the consumers' cursors.

``campaign_due_steps`` is the durable schedule: one row per active enrolment naming the step it
runs next and when; workers claim due rows in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
``campaign_sends.key`` (``enrolment:step``) is unique, so a step can record its send only once,
and it is recorded before any channel is called. ``campaign_cursors`` holds the position of each
outbox consumer (events, segment events) and the next run of each schedule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from recsys.data.event_check import ID_LENGTH
from recsys.errors import ConflictError, NotFoundError
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.erasure import erasure_hooks, rows_exporter, user_hash
from recsys.store.tables import Base, BigId, JSONObject, UTCDateTime, utcnow

STATUSES = ("draft", "active", "paused", "archived")


class CampaignRow(Base):
    """One campaign: its definition and state (draft -> active <-> paused -> archived)."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class TemplateRow(Base):
    """A message template (Jinja2 source, validated when saved)."""

    __tablename__ = "campaign_templates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnrolmentRow(Base):
    """A customer's pass through a campaign (status active|completed|exited|cancelled)."""

    __tablename__ = "campaign_enrolments"
    __table_args__ = (
        Index("ix_campaign_enrolments_campaign_user", "campaign_id", "user_id"),
        Index("ix_campaign_enrolments_user", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="active")
    arm: Mapped[str | None] = mapped_column(String(32))
    arm_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)


class DueStepRow(Base):
    """The step an active enrolment runs next, and when (the durable schedule)."""

    __tablename__ = "campaign_due_steps"
    __table_args__ = (Index("ix_campaign_due_steps_due", "due_at"),)

    enrolment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    step_id: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # wait_until: {"since": ISO time, "outcome": "match"} once the awaited thing happened
    state: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)


class SendRow(Base):
    """One message a step sent (or held back): recorded under ``key`` before the channel call.

    status: pending -> sending -> sent | failed | dead; or suppressed (consent, cap) at once.
    """

    __tablename__ = "campaign_sends"
    __table_args__ = (
        Index("ix_campaign_sends_user_channel", "user_id", "channel", "created_at"),
        Index("ix_campaign_sends_campaign", "campaign_id", "created_at"),
        Index("ix_campaign_sends_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    enrolment_id: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    step_id: Mapped[str] = mapped_column(String(64))
    arm: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    items: Mapped[list[str] | None] = mapped_column(JSONObject)
    model_version: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageRow(Base):
    """The rendered message of a send (the outbox channel's delivery is this row)."""

    __tablename__ = "campaign_messages"

    send_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeadLetterRow(Base):
    """A webhook message given up after its last retry."""

    __tablename__ = "campaign_dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    send_id: Mapped[int] = mapped_column(BigInteger, index=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    url: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class CursorRow(Base):
    """A consumer's position (``events``, ``segment_events``) or a schedule's next run."""

    __tablename__ = "campaign_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)


TABLES = (
    "campaigns",
    "campaign_templates",
    "campaign_enrolments",
    "campaign_due_steps",
    "campaign_sends",
    "campaign_messages",
    "campaign_dead_letters",
    "campaign_cursors",
)


def row_dict(row: Base) -> dict[str, Any]:
    """A mapped row as a plain dict of its columns."""
    return {a.key: getattr(row, a.key) for a in type(row).__mapper__.column_attrs}


class CampaignStore:
    """Campaign definitions, templates and consumer cursors (the scheduler works on the other
    tables directly, in its own transactions).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, row: dict[str, Any]) -> dict[str, Any]:
        """Insert a campaign (keys of :class:`CampaignRow`); ``ConflictError`` if the id exists."""
        with write_session(self.engine) as s:
            if s.get(CampaignRow, row["id"]) is not None:
                raise ConflictError(f"campaign {row['id']!r} already exists")
            now = utcnow()
            campaign = CampaignRow(**{"created_at": now, "updated_at": now, **row})
            s.add(campaign)
            s.flush()
            return row_dict(campaign)

    def update(self, campaign_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields of a campaign; ``NotFoundError`` if there is none."""
        with write_session(self.engine) as s:
            campaign = s.get(CampaignRow, campaign_id)
            if campaign is None:
                raise NotFoundError(f"no campaign {campaign_id!r}")
            for key, value in changes.items():
                setattr(campaign, key, value)
            campaign.updated_at = utcnow()
            s.flush()
            return row_dict(campaign)

    def get(self, campaign_id: str) -> dict[str, Any]:
        """One campaign; ``NotFoundError`` if there is none."""
        with read_session(self.engine) as s:
            campaign = s.get(CampaignRow, campaign_id)
            if campaign is None:
                raise NotFoundError(f"no campaign {campaign_id!r}")
            return row_dict(campaign)

    def all(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every campaign (of ``status``), by id."""
        stmt = select(CampaignRow).order_by(CampaignRow.id)
        if status is not None:
            stmt = stmt.where(CampaignRow.status == status)
        with read_session(self.engine) as s:
            return [row_dict(r) for r in s.scalars(stmt)]

    def put_template(self, template: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a template (``id``, ``subject``, ``text``, ``html``)."""
        values = {**template, "updated_at": utcnow()}
        with write_session(self.engine) as s:
            stmt = dialect_insert(s, TemplateRow.__table__)
            stmt = stmt.on_conflict_do_update(
                index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
            )
            s.execute(stmt, values)
        return self.template(template["id"])

    def template(self, template_id: str) -> dict[str, Any]:
        """One template; ``NotFoundError`` if there is none."""
        with read_session(self.engine) as s:
            row = s.get(TemplateRow, template_id)
            if row is None:
                raise NotFoundError(f"no template {template_id!r}")
            return row_dict(row)

    def templates(self, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Templates by id (all of them, or those of ``ids`` that exist)."""
        stmt = select(TemplateRow)
        if ids is not None:
            stmt = stmt.where(TemplateRow.id.in_(ids))
        with read_session(self.engine) as s:
            return {r.id: row_dict(r) for r in s.scalars(stmt)}

    def messages(self, campaign_id: str | None = None, user_id: str | None = None,
                 after: int = 0, limit: int = 100,
                 newest_first: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        """Stored messages with their send (ids after ``after``), oldest first (or the newest
        ``limit``, newest first)."""
        order = MessageRow.send_id.desc() if newest_first else MessageRow.send_id
        stmt = (
            select(MessageRow, SendRow.status, SendRow.items, SendRow.arm, SendRow.step_id,
                   SendRow.model_version)
            .join(SendRow, SendRow.id == MessageRow.send_id)
            .where(MessageRow.send_id > after)
            .order_by(order)
            .limit(limit)
        )  # fmt: skip
        if campaign_id is not None:
            stmt = stmt.where(MessageRow.campaign_id == campaign_id)
        if user_id is not None:
            stmt = stmt.where(MessageRow.user_id == user_id)
        with read_session(self.engine) as s:
            return [
                {**row_dict(m), "status": st, "items": items or [], "arm": arm, "step_id": step,
                 "model_version": version}
                for m, st, items, arm, step, version in s.execute(stmt)
            ]  # fmt: skip

    def sent_count(self, since: datetime) -> int:
        """Messages sent (status ``sent``) at or after ``since``, by every campaign."""
        stmt = (
            select(func.count())
            .select_from(SendRow)
            .where(SendRow.status == "sent", SendRow.sent_at >= since)
        )
        with read_session(self.engine) as s:
            return int(s.scalar(stmt) or 0)

    def sent_counts(self) -> dict[str, int]:
        """Messages sent (status ``sent``) per campaign id, in one grouped query."""
        stmt = (
            select(SendRow.campaign_id, func.count())
            .where(SendRow.status == "sent")
            .group_by(SendRow.campaign_id)
        )
        with read_session(self.engine) as s:
            return {cid: int(n) for cid, n in s.execute(stmt)}

    def dead_letters(self, campaign_id: str | None = None, limit: int = 100) -> list[dict]:
        """Webhook messages given up, newest first."""
        stmt = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        if campaign_id is not None:
            stmt = stmt.where(DeadLetterRow.campaign_id == campaign_id)
        with read_session(self.engine) as s:
            return [row_dict(r) for r in s.scalars(stmt)]


def get_cursor(session: Session, name: str) -> CursorRow:
    """The cursor ``name`` (created at position 0 when missing), locked for this transaction."""
    stmt = select(CursorRow).where(CursorRow.name == name)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        session.execute(dialect_insert(session, CursorRow.__table__).on_conflict_do_nothing(),
                        {"name": name, "position": 0})  # fmt: skip
        row = session.scalars(stmt).one()
    return row


def _erase(session: Session, user_id: str) -> int:
    # Enrolments stay as the anonymised audit record (cancelled, user id replaced by its hash);
    # everything that names or was sent to the customer goes.
    anonymous = "erased:" + user_hash(user_id)[:24]
    count = 0
    for table in (DueStepRow, MessageRow, DeadLetterRow, SendRow):
        count += session.execute(delete(table).where(table.user_id == user_id)).rowcount
    stmt = (
        update(EnrolmentRow)
        .where(EnrolmentRow.user_id == user_id)
        .values(user_id=anonymous, status="cancelled", context=None, finished_at=utcnow())
    )
    return count + session.execute(stmt).rowcount


_export = rows_exporter(EnrolmentRow, DueStepRow, MessageRow, DeadLetterRow, SendRow)
erasure_hooks.register("campaigns", _erase, _export)
