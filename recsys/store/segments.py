"""Segment tables: definitions, memberships, the segment-event outbox and small state values.

``segment_events`` is the outbox campaigns consume in ``id`` order: every entry into or exit
from a segment is written there in the same transaction as the membership change
(:meth:`SegmentStore.apply_changes`). ``segment_state`` keeps named JSON values the segment jobs
share (RFM quintile edges, the time of the last sweep, cluster centroids).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    Engine,
    Index,
    Select,
    String,
    Text,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from recsys.data.event_check import ID_LENGTH
from recsys.errors import ConflictError, NotFoundError
from recsys.store.db import analyze, dialect_insert, read_session, write_session
from recsys.store.erasure import erasure_hooks, rows_exporter
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.tables import Base, BigId, JSONObject, UTCDateTime, utcnow

SEGMENT_ID_LENGTH = 64
SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default WAL size (pages) that triggers a checkpoint
KINDS = ("rule", "static", "rfm")


class SegmentRow(Base):
    """One segment: a rule (``definition``), a static list (audiences) or a built-in RFM group."""

    __tablename__ = "segments"
    # Covers DEFINITIONS_VERSION, read on every event: a scan of this index, not of the rows
    # with their definitions.
    __table_args__ = (Index("ix_segments_updated_at", "updated_at"),)

    id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="rule")
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class SegmentMember(Base):
    """A customer currently in a segment."""

    __tablename__ = "segment_members"
    # (user, segment) covers "the segments of a customer", read on every event: the index
    # alone answers it, without a lookup of each membership's row.
    __table_args__ = (
        Index("ix_segment_members_user_segment", "user_id", "segment_id"),
        {"sqlite_with_rowid": False},
    )

    segment_id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    score: Mapped[float | None] = mapped_column()  # audiences: the affinity/similarity score


class SegmentEvent(Base):
    """One entry into or exit from a segment (the outbox campaigns read in id order)."""

    __tablename__ = "segment_events"
    __table_args__ = (
        Index("ix_segment_events_segment_at", "segment_id", "at"),
        Index("ix_segment_events_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    segment_id: Mapped[str] = mapped_column(String(SEGMENT_ID_LENGTH))
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    kind: Mapped[str] = mapped_column(String(8))  # "entry" | "exit"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cause: Mapped[str] = mapped_column(String(16), default="event")  # event|sweep|refresh|...


class SegmentState(Base):
    """A named JSON value shared by the segment jobs (RFM edges, last sweep ...)."""

    __tablename__ = "segment_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONObject)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


TABLES = ("customer_aggregates", "segments", "segment_members", "segment_events", "segment_state")


def _segment_dict(row: SegmentRow) -> dict[str, Any]:
    return {a.key: getattr(row, a.key) for a in SegmentRow.__mapper__.column_attrs}


class SegmentStore:
    """Segment definitions, memberships and the segment-event outbox.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sql: RealtimeSql | None = None

    @property
    def realtime_sql(self) -> RealtimeSql:
        """The per-event path's statements for this store's database, compiled once."""
        if self._sql is None:
            self._sql = RealtimeSql(self.engine)
        return self._sql

    # -- definitions ----------------------------------------------------------------------
    def create(self, segment: dict[str, Any], session: Session | None = None) -> dict[str, Any]:
        """Insert a segment (keys of :class:`SegmentRow`); ``ConflictError`` if the id exists."""
        with _session(self.engine, session) as s:
            if s.get(SegmentRow, segment["id"]) is not None:
                raise ConflictError(f"segment {segment['id']!r} already exists")
            row = SegmentRow(**segment)
            s.add(row)
            s.flush()
            return _segment_dict(row)

    def update(self, segment_id: str, changes: dict[str, Any], session: Session | None = None):
        """Change fields of a segment; returns it. ``NotFoundError`` if there is none."""
        with _session(self.engine, session) as s:
            row = s.get(SegmentRow, segment_id)
            if row is None:
                raise NotFoundError(f"no segment {segment_id!r}")
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.flush()
            return _segment_dict(row)

    def delete(self, segment_id: str, session: Session | None = None) -> int:
        """Delete a segment and its memberships (its past segment events stay); returns the
        number of members it had."""
        with _session(self.engine, session) as s:
            row = s.get(SegmentRow, segment_id)
            if row is None:
                raise NotFoundError(f"no segment {segment_id!r}")
            stmt = delete(SegmentMember).where(SegmentMember.segment_id == segment_id)
            members = s.execute(stmt).rowcount
            s.delete(row)
            return members

    def get(self, segment_id: str) -> dict[str, Any]:
        """One segment as a dict; ``NotFoundError`` if there is none."""
        with read_session(self.engine) as s:
            row = s.get(SegmentRow, segment_id)
            if row is None:
                raise NotFoundError(f"no segment {segment_id!r}")
            return _segment_dict(row)

    def all(self, session: Session | None = None) -> list[dict[str, Any]]:
        """Every segment, by id."""
        with _session(self.engine, session, write=False) as s:
            return [_segment_dict(r) for r in s.scalars(select(SegmentRow).order_by(SegmentRow.id))]

    # -- memberships ----------------------------------------------------------------------
    def memberships(self, session: Session, user_ids: Iterable[str]) -> dict[str, set[str]]:
        """Segment ids of each of ``user_ids`` (in the caller's transaction)."""
        users = list(user_ids)
        out: dict[str, set[str]] = {u: set() for u in users}
        conn = session.connection()
        for start in range(0, len(users), 500):
            for user, segment in conn.execute(_MEMBERSHIPS, {"ids": users[start : start + 500]}):
                out[user].add(segment)
        return out

    def apply_changes(
        self,
        session: Session,
        changes: Iterable[tuple[str, str, str, float | None]],
        at: datetime,
        cause: str,
    ) -> int:
        """Apply ``(segment_id, user_id, "entry"|"exit", score)`` changes and write one segment
        event each, in the caller's transaction; returns the number of changes.

        Written as the per-event path writes them (:meth:`RealtimeSql.apply_changes`, on the
        session's own DBAPI connection, so in its transaction): a refresh writes millions of
        rows, and through the session SQLAlchemy's per-row parameter handling (each row's
        times converted again) cost three times what the database did.
        """
        changes = list(changes)
        if not changes:
            return 0
        cursor = session.connection().connection.dbapi_connection.cursor()
        try:
            self.realtime_sql.apply_changes(cursor, changes, at, cause)
        finally:
            cursor.close()
        return len(changes)

    def members(self, segment_id: str, after: str | None = None, limit: int = 100) -> list[dict]:
        """Members of a segment by user id, ``limit`` after the user id ``after`` (keyset
        pagination: pass the last user id of a page to get the next)."""
        stmt = select(SegmentMember).where(SegmentMember.segment_id == segment_id)
        if after is not None:
            stmt = stmt.where(SegmentMember.user_id > after)
        stmt = stmt.order_by(SegmentMember.user_id).limit(limit)
        with read_session(self.engine) as s:
            return [
                {"user_id": m.user_id, "entered_at": m.entered_at, "score": m.score}
                for m in s.scalars(stmt)
            ]

    def refresh_statistics(self) -> None:
        """``ANALYZE`` the membership tables (PostgreSQL). A batch pass grows them from few rows
        to millions faster than autovacuum analyzes them, and with stale statistics the planner
        read a chunk's memberships by a sequential scan instead of its user index (seen at 1M
        customers: 0.5 s per 1,000-customer chunk)."""
        analyze(self.engine, "segment_members", "segment_events")

    def size(self, segment_id: str) -> int:
        """Number of members of a segment."""
        stmt = select(func.count()).where(SegmentMember.segment_id == segment_id)
        with read_session(self.engine) as s:
            return int(s.scalar(stmt) or 0)

    def sizes(self) -> dict[str, int]:
        """Number of members of every segment that has any (one grouped query)."""
        stmt = select(SegmentMember.segment_id, func.count()).group_by(SegmentMember.segment_id)
        with read_session(self.engine) as s:
            return {segment: int(n) for segment, n in s.execute(stmt)}

    def user_segments(self, user_id: str) -> list[dict[str, Any]]:
        """The segments ``user_id`` is in now, with when they entered."""
        stmt = (
            select(SegmentMember.segment_id, SegmentMember.entered_at, SegmentRow.name)
            .join(SegmentRow, SegmentRow.id == SegmentMember.segment_id)
            .where(SegmentMember.user_id == user_id)
            .order_by(SegmentMember.segment_id)
        )
        with read_session(self.engine) as s:
            return [
                {"segment_id": sid, "name": name, "entered_at": at}
                for sid, at, name in s.execute(stmt)
            ]

    def events(self, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Segment events with ``id > after_id``, oldest first (what a campaign consumer reads)."""
        stmt = select(SegmentEvent).where(SegmentEvent.id > after_id).order_by(SegmentEvent.id)
        with read_session(self.engine) as s:
            return [
                {a.key: getattr(e, a.key) for a in SegmentEvent.__mapper__.column_attrs}
                for e in s.scalars(stmt.limit(limit))
            ]

    def daily_changes(self, segment_id: str, days: int, now: datetime) -> dict[str, list[int]]:
        """Entries and exits per UTC day for the last ``days`` days (oldest first)."""
        return self.daily_changes_of([segment_id], days, now)[segment_id]

    def daily_changes_of(
        self, segment_ids: Iterable[str], days: int, now: datetime
    ) -> dict[str, dict[str, list[int]]]:
        """:meth:`daily_changes` of each of ``segment_ids`` in one query (it uses the
        ``(segment_id, at)`` index)."""
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        ids = list(dict.fromkeys(segment_ids))
        out = {segment: {"entries": [0] * days, "exits": [0] * days} for segment in ids}
        if not ids:
            return out
        stmt = select(SegmentEvent.segment_id, SegmentEvent.kind, SegmentEvent.at).where(
            SegmentEvent.segment_id.in_(ids), SegmentEvent.at >= start
        )
        with read_session(self.engine) as s:
            for segment, kind, at in s.execute(stmt):
                day = (at - start).days
                if 0 <= day < days:
                    out[segment]["entries" if kind == "entry" else "exits"][day] += 1
        return out

    # -- shared state ---------------------------------------------------------------------
    def get_state(self, name: str, session: Session | None = None) -> dict[str, Any] | None:
        """The named state value, or ``None``."""
        with _session(self.engine, session, write=False) as s:
            row = s.get(SegmentState, name)
            return None if row is None else dict(row.value)

    def put_state(self, name: str, value: dict[str, Any], session: Session | None = None) -> None:
        """Write the named state value."""
        with _session(self.engine, session) as s:
            stmt = dialect_insert(s, SegmentState.__table__)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"], set_={"value": value, "updated_at": utcnow()}
            )
            s.execute(stmt, {"name": name, "value": value, "updated_at": utcnow()})

    def pending_users(self, limit: int = 1000) -> list[str]:
        """Customers whose committed events have not been evaluated yet (the watermark)."""
        stmt = select(CustomerAggregate.user_id).where(CustomerAggregate.pending.is_(True))
        with read_session(self.engine) as s:
            return list(s.scalars(stmt.order_by(CustomerAggregate.user_id).limit(limit)))

    def clear_pending(self, session: Session, seqs: dict[str, int]) -> None:
        """Mark customers evaluated up to the event counts ``seqs`` (newer events keep them
        pending)."""
        if seqs:
            params = [{"uid": u, "at_seq": seq} for u, seq in seqs.items()]
            session.connection().execute(_CLEAR_PENDING, params)


# Built once (the per-event path runs them for every event).
_VERSION_PARTS = (
    select(func.count()).select_from(SegmentRow),
    select(func.max(SegmentRow.updated_at)),
)
DEFINITIONS_VERSION = select(*(part.scalar_subquery() for part in _VERSION_PARTS))
"""Changes whenever a definition is created, changed or deleted (by any process). Two scalar
subqueries, so that each is answered from ``ix_segments_updated_at`` alone (the max by one
search instead of a scan)."""
DEFINITIONS = select(SegmentRow.id, SegmentRow.kind, SegmentRow.definition, SegmentRow.active)
_STATE = select(SegmentState.value).where(SegmentState.name == bindparam("name"))
_MEMBERSHIPS = select(SegmentMember.user_id, SegmentMember.segment_id).where(
    SegmentMember.user_id.in_(bindparam("ids", expanding=True))
)
_DELETE_MEMBER = delete(SegmentMember.__table__).where(
    SegmentMember.__table__.c.segment_id == bindparam("sid"),
    SegmentMember.__table__.c.user_id == bindparam("uid"),
)
_AGGREGATES = CustomerAggregate.__table__
_CLEAR_PENDING = (
    update(_AGGREGATES)
    .where(_AGGREGATES.c.user_id == bindparam("uid"), _AGGREGATES.c.seq == bindparam("at_seq"))
    .values(pending=False)
)
_RESCORE = (
    update(_AGGREGATES)
    .where(_AGGREGATES.c.user_id == bindparam("uid"))
    .values(rfm_r=bindparam("r"), rfm_f=bindparam("f"), rfm_m=bindparam("m"))
)
# A purchase's new RFM scores and the watermark of its evaluation in one statement.
_RESCORE_AND_CLEAR = _RESCORE.values(
    pending=case((_AGGREGATES.c.seq == bindparam("at_seq"), false()), else_=_AGGREGATES.c.pending)
)
_STATE_AT = select(SegmentState.updated_at).where(SegmentState.name == bindparam("state"))
CONTEXT_COLUMNS = 4  # appended by RealtimeSql.with_context
MEMBER_SEPARATOR = "\x1f"  # no segment id holds it (ASCII unit separator)


class RawStatement:
    """A Core statement compiled once for one dialect and run on a DBAPI cursor.

    The per-event segment path runs a handful of statements per event: SQLAlchemy's execution
    layer costs 25-50 µs a statement there, the driver about 2 µs. Values still pass through the
    column types' own bind and result processors (UTC datetimes, JSON, booleans), so they are
    the same as through a session. Expanding ``IN`` parameters are not supported.
    """

    def __init__(self, stmt: Any, dialect: Any, column_keys: list[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup) if compiled.positional else None
        self.defaults = {n: p.value for n, p in compiled.binds.items() if not p.required}
        self.binds = {}
        for name, param in compiled.binds.items():
            process = param.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.binds[name] = process
        self._types = (
            [c.type.dialect_impl(dialect) for c in stmt.selected_columns]
            if getattr(stmt, "is_select", False)
            else []
        )
        self._dialect = dialect
        self.results: tuple | None = None  # built at the first run, from the driver's types

    def _processors(self, description: Any) -> tuple:
        self.results = tuple(
            t.result_processor(self._dialect, d[1])
            for t, d in zip(self._types, description, strict=True)
        )
        return self.results

    def params(self, values: dict[str, Any]) -> Any:
        """The driver's parameters for ``values`` (bind name -> value)."""
        if self.defaults:
            values = {**self.defaults, **values}
        if self.binds:
            binds = self.binds
            values = {k: binds[k](v) if k in binds else v for k, v in values.items()}
        return values if self.names is None else tuple(values[n] for n in self.names)

    def rows(self, cursor: Any, values: dict[str, Any]) -> list[tuple]:
        """Run a query; its rows with the result types applied."""
        cursor.execute(self.sql, self.params(values))
        rows = cursor.fetchall()
        procs = self.results
        if procs is None:
            procs = self._processors(cursor.description)
        if not any(procs):
            return rows
        return [
            tuple(v if p is None else p(v) for p, v in zip(procs, r, strict=True)) for r in rows
        ]

    def run(self, cursor: Any, values: dict[str, Any]) -> None:
        """Run a statement once."""
        cursor.execute(self.sql, self.params(values))

    def many(
        self,
        cursor: Any,
        keys: tuple[str, ...],
        rows: list[tuple],
        same: dict[str, Any] | None = None,
    ) -> None:
        """Run a statement for each of ``rows`` (one ``executemany``): tuples of the values of
        ``keys`` (bind names); ``same``: values shared by every row (converted once). Rows go
        to the driver without a dictionary each (a refresh writes millions)."""
        binds = self.binds
        same = {**self.defaults, **(same or {})}
        fixed = tuple(binds[k](v) if k in binds else v for k, v in same.items())
        # Converted only where a row holds a value (a rule segment's scores are all None).
        convert = [
            (i, binds[k])
            for i, k in enumerate(keys)
            if k in binds and any(row[i] is not None for row in rows)
        ]
        if convert:
            rows = [_converted(row, convert) for row in rows]
        order = (*keys, *same)
        if self.names is None:  # named parameters
            named = [dict(zip(order, row + fixed, strict=True)) for row in rows]
            cursor.executemany(self.sql, named)
            return
        pick = itemgetter(*(order.index(n) for n in self.names))
        if len(self.names) == 1:
            cursor.executemany(self.sql, [(pick(row + fixed),) for row in rows])
            return
        cursor.executemany(self.sql, [pick(row + fixed) for row in rows])


def _converted(row: tuple, convert: list[tuple[int, Any]]) -> tuple:
    values = list(row)
    for i, process in convert:
        values[i] = process(values[i])
    return tuple(values)


class RealtimeSql:
    """The statements of the per-event segment path, compiled for one database."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = dialect = engine.dialect
        self.definitions = RawStatement(DEFINITIONS, dialect)
        self.state = RawStatement(_STATE, dialect)
        self.clear_pending = RawStatement(_CLEAR_PENDING, dialect)
        self.rescore_and_clear = RawStatement(_RESCORE_AND_CLEAR, dialect)
        self.delete_member = RawStatement(_DELETE_MEMBER, dialect)
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        members = upsert(SegmentMember.__table__).on_conflict_do_nothing()
        keys = ["segment_id", "user_id", "entered_at", "score"]
        self.insert_member = RawStatement(members, dialect, keys)
        keys = ["segment_id", "user_id", "kind", "at", "cause"]
        self.insert_event = RawStatement(insert(SegmentEvent.__table__), dialect, keys)
        self._compiled: dict[Any, RawStatement] = {}

    def statement(self, key: Any, build) -> RawStatement:
        """A statement compiled once per ``key`` (``build()`` makes the Core statement)."""
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = RawStatement(build(), self.dialect)
        return found

    def with_context(self, customer: Select) -> Select:
        """``customer`` (one customer's row; binds ``uid``) with :data:`CONTEXT_COLUMNS` more
        columns: the definitions' version (two), when the state named by the bind ``state``
        last changed, and the customer's segment ids joined by :data:`MEMBER_SEPARATOR` (or
        ``None``). The per-event path reads all it needs before evaluating in one statement."""
        join = func.string_agg if self.dialect.name == "postgresql" else func.group_concat
        members = select(join(SegmentMember.segment_id, literal(MEMBER_SEPARATOR)))
        members = members.where(SegmentMember.user_id == bindparam("uid"))
        return customer.add_columns(
            *(c.scalar_subquery() for c in _VERSION_PARTS),
            _STATE_AT.scalar_subquery(),
            members.scalar_subquery(),
        )

    def apply_changes(
        self, cursor: Any, changes: list[tuple[str, str, str, float | None]], at, cause: str
    ) -> None:
        """:meth:`SegmentStore.apply_changes` on a cursor (memberships and their outbox rows)."""
        entries = [(s, u, x) for s, u, k, x in changes if k == "entry"]
        if entries:
            keys = ("segment_id", "user_id", "score")
            self.insert_member.many(cursor, keys, entries, {"entered_at": at})
        exits = [(s, u) for s, u, k, _ in changes if k == "exit"]
        if exits:
            self.delete_member.many(cursor, ("sid", "uid"), exits)
        events = [(s, u, k) for s, u, k, _ in changes]
        keys = ("segment_id", "user_id", "kind")
        self.insert_event.many(cursor, keys, events, {"at": at, "cause": cause})


@contextmanager
def realtime_transaction(
    engine: Engine, synchronous: str, autocheckpoint: int = SQLITE_AUTOCHECKPOINT
) -> Iterator[Any]:
    """A write transaction on a DBAPI cursor, committed on exit (rolled back on error).

    On SQLite it begins ``IMMEDIATE`` (as :func:`recsys.store.write_session` does) and commits
    with ``PRAGMA synchronous=NORMAL`` (no fsync; see
    :func:`recsys.segments.engine.evaluation_session` for why that is safe there) and
    ``wal_autocheckpoint=0``, restoring ``synchronous`` and ``autocheckpoint`` after. Without
    the latter, the commit that takes the WAL past the checkpoint threshold copies it into the
    database (milliseconds) inside the per-event path; with it, the next commit of another
    transaction (an event append, which syncs anyway) checkpoints. Durability is unchanged: a
    checkpoint only moves committed pages from the WAL into the database file.
    """
    pooled = engine.raw_connection()  # back to the pool (reset) on close
    try:
        raw = pooled.dbapi_connection
        cursor = raw.cursor()
        sqlite = engine.dialect.name == "sqlite"
        try:
            if sqlite:
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
        finally:
            if sqlite:
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
            cursor.close()
    finally:
        pooled.close()


@contextmanager
def _session(engine: Engine, session: Session | None, write: bool = True) -> Iterator[Session]:
    """The caller's session, or a new read/write transaction when there is none."""
    if session is not None:
        yield session
        return
    with (write_session if write else read_session)(engine) as new:
        yield new


def _erase_memberships(session: Session, user_id: str) -> int:
    return session.execute(delete(SegmentMember).where(SegmentMember.user_id == user_id)).rowcount


def _erase_segment_events(session: Session, user_id: str) -> int:
    return session.execute(delete(SegmentEvent).where(SegmentEvent.user_id == user_id)).rowcount


def _erase_aggregates(session: Session, user_id: str) -> int:
    stmt = delete(CustomerAggregate).where(CustomerAggregate.user_id == user_id)
    return session.execute(stmt).rowcount


erasure_hooks.register("customer_aggregates", _erase_aggregates, rows_exporter(CustomerAggregate))
erasure_hooks.register("segment_members", _erase_memberships, rows_exporter(SegmentMember))
erasure_hooks.register("segment_events", _erase_segment_events, rows_exporter(SegmentEvent))
