"""Membership in real time: evaluate customers after their events, sweep the clock, recover.

:meth:`SegmentEngine.on_events` subscribes to :class:`recsys.ingest.EventIngestor`: after an
event batch is committed it re-evaluates, for each customer in it, the segments that events of
those types can change, and writes memberships, their entry/exit segment events (the outbox) and
the customer's evaluation watermark in one transaction. The event transaction marked the customer
``pending``; only this transaction clears it, so :meth:`recover` finds customers whose events
were committed but not evaluated (a crash in between) and evaluates them. :meth:`sweep`
re-evaluates the segments the clock alone can change ("no purchase in 30 days").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from recsys.segments import definitions as d
from recsys.segments import rfm
from recsys.segments.documents import CUSTOMER, customer_doc, events_of, load_customers
from recsys.segments.evaluate import Compiled, Customer, EventView, Matcher, compile_segments
from recsys.store import Store, read_session, write_session
from recsys.store.db import SQLITE_SYNCHRONOUS
from recsys.store.profile_aggregates import CustomerAggregate
from recsys.store.segments import (
    CONTEXT_COLUMNS,
    DEFINITIONS,
    DEFINITIONS_VERSION,
    MEMBER_SEPARATOR,
    realtime_transaction,
)
from recsys.store.tables import UserProfile

logger = logging.getLogger(__name__)

SWEEP_STATE = "sweep"
CHUNK = 1000  # customers per transaction in sweeps and refreshes
STATISTICS_EVERY = 100  # chunks between two refreshes of the store's statistics in a pass


def _now() -> datetime:
    return datetime.now(UTC)


class _Definitions:
    """The analysed active definitions at one version, with the per-event plans (which
    segments events of a set of types can change, which event types and how far back they
    read), filled as event types come. Replaced whole, so readers in other threads see one
    consistent set."""

    def __init__(self, version, compiled: dict[str, Compiled], static: frozenset[str]) -> None:
        self.version, self.compiled, self.static = version, compiled, static
        self.plans: dict[frozenset[str], tuple[list[Compiled], tuple[str, ...], list]] = {}

    def plan(self, kinds: frozenset[str]) -> tuple[list[Compiled], tuple[str, ...], list]:
        """``(segments events of kinds can change, event types they read, their lookbacks)``."""
        found = self.plans.get(kinds)
        if found is None:
            selected = [c for c in self.compiled.values() if c.triggered_by(kinds)]
            reading = [c for c in selected if c.needs_events]
            types = tuple(sorted(frozenset().union(*(c.event_types for c in reading))))
            found = self.plans[kinds] = (selected, types, [c.lookback for c in reading])
        return found


_NONE = _Definitions(None, {}, frozenset())
_NEVER = object()


class SegmentEngine:
    """Evaluates segment membership for a store (one per process; thread-safe for reads).

    Parameters
    ----------
    store : Store
    clock : callable, optional
        Returns the current UTC time (tests move it forward).
    """

    def __init__(self, store: Store, clock: Callable[[], datetime] = _now) -> None:
        self.store, self.clock = store, clock
        self._defs = _NONE
        self._cut: tuple[Any, dict | None] = (_NEVER, None)  # (edges changed at, RFM edges)
        self._recovered = False

    # -- definitions ----------------------------------------------------------------------
    @property
    def _static(self) -> frozenset[str]:
        return self._defs.static

    def compiled(self, session: Session) -> dict[str, Compiled]:
        """The active rule segments, analysed (re-read when any definition changed)."""
        version = tuple(session.connection().execute(DEFINITIONS_VERSION).one())
        if version != self._defs.version:
            self._load(session.execute(DEFINITIONS).all(), version)
        return self._defs.compiled

    def _load(self, rows, version) -> _Definitions:
        nodes = {
            sid: d.parse_definition(defn)
            for sid, kind, defn, active in rows
            if active and kind != "static" and defn is not None
        }
        static = frozenset(sid for sid, kind, _, _ in rows if kind == "static")
        self._defs = _Definitions(version, compile_segments(nodes), static)
        return self._defs

    def invalidate(self) -> None:
        """Forget the analysed definitions and RFM edges (after a change in this process)."""
        self._defs = _NONE
        self._cut = (_NEVER, None)

    # -- evaluation -----------------------------------------------------------------------
    def on_events(self, rows: list[dict]) -> None:
        """Subscriber of the event path: evaluate the customers of a committed batch (the
        first call also evaluates customers a crash left pending)."""
        if not self._recovered:
            self._recovered = True
            self.recover()
        types: dict[str, set[str]] = {}
        for row in rows:
            types.setdefault(row["user_id"], set()).add(row["event_type"])
        if types:
            self._evaluate_events(types)

    # The per-event path: what :meth:`evaluate` does for customers who just performed events,
    # one customer at a time on a DBAPI cursor (a handful of primary-key statements each, no
    # ORM), with the definitions compiled once and the segments to evaluate looked up by the
    # event types (:meth:`_Definitions.plan`).
    def _evaluate_events(self, types: dict[str, set[str]]) -> int:
        now, sql = self.clock(), self.store.segments.realtime_sql
        written = 0
        with realtime_transaction(self.store.engine, SQLITE_SYNCHRONOUS) as cursor:
            for user_id in sorted(types):
                written += self._evaluate_one(cursor, sql, user_id, frozenset(types[user_id]), now)
        return written

    def _evaluate_one(self, cursor, sql, user_id, kinds, now) -> int:
        stmt = sql.statement("customer", lambda: sql.with_context(CUSTOMER))
        found = stmt.rows(cursor, {"uid": user_id, "state": rfm.STATE_NAME})
        if not found:
            return 0
        row = found[0]
        count, changed_at, edges_at, members = row[-CONTEXT_COLUMNS:]
        defs = self._defs
        if (count, changed_at) != defs.version:
            defs = self._load(sql.definitions.rows(cursor, {}), (count, changed_at))
        doc = customer_doc(row[:-CONTEXT_COLUMNS])
        selected, event_types, lookbacks = defs.plan(kinds)
        current = set(members.split(MEMBER_SEPARATOR)) if members else set()
        customer = Customer(user_id, doc, static=frozenset(current & defs.static))
        if event_types:
            since = _widest(lookbacks, now)
            params = {f"t{i}": t for i, t in enumerate(event_types)}
            params["uid"] = user_id
            if since is not None:
                params["since"] = since
            shape = (len(event_types), since is not None)
            stmt = sql.statement(("events", *shape), lambda: events_of(*shape))
            customer.events = [
                EventView(kind, ts, item, category, props)
                for kind, ts, item, props, category in stmt.rows(cursor, params)
            ]
        rescored = "purchase" in kinds and self._rescore(cursor, sql, doc, user_id, edges_at, now)
        changes = []
        if selected:
            matcher = Matcher(customer, now, defs.compiled)
            for c in selected:
                inside, was = matcher.segment(c.segment_id), c.segment_id in current
                if inside != was:
                    changes.append((c.segment_id, user_id, "entry" if inside else "exit", None))
        if changes:
            sql.apply_changes(cursor, changes, now, "event")
        if doc.get("seq") is not None and not rescored:
            sql.clear_pending.run(cursor, {"uid": user_id, "at_seq": doc["seq"]})
        return len(changes)

    def _edges(self, cursor, sql, changed_at) -> dict | None:
        """The recorded RFM quintile edges, read again only when they changed (``changed_at``)."""
        if changed_at != self._cut[0]:
            state = sql.state.rows(cursor, {"name": rfm.STATE_NAME})
            self._cut = (changed_at, dict(state[0][0]) if state and state[0][0] else None)
        return self._cut[1]

    def _rescore(self, cursor, sql, doc, user_id, edges_at, now) -> bool:
        """:meth:`_rescore_rfm` for one customer on the per-event cursor; whether the scores
        changed (written together with the customer's watermark)."""
        cut = self._edges(cursor, sql, edges_at)
        if not cut:
            return False
        r, f, m = rfm.score_customer(
            doc.get("last_purchase_at"), doc["purchase_count"], doc["revenue"], cut, now
        )
        changed = (r, f, m) != (doc.get("rfm_r"), doc.get("rfm_f"), doc.get("rfm_m"))
        doc.update(rfm_r=r, rfm_f=f, rfm_m=m, rfm_group=rfm.group_of(r, f, m))
        if changed:
            values = {"uid": user_id, "r": r, "f": f, "m": m, "at_seq": doc.get("seq")}
            sql.rescore_and_clear.run(cursor, values)
        return changed

    def evaluate(
        self,
        user_ids: list[str],
        types: dict[str, set[str]] | None = None,
        *,
        cause: str,
        only: set[str] | None = None,
    ) -> int:
        """Re-evaluate ``user_ids`` in one transaction and clear their watermark; returns the
        number of entries and exits written.

        Parameters
        ----------
        user_ids : list of str
        types : dict, optional
            Event types each customer just performed: only segments those can change are
            evaluated (default: all segments).
        cause : str
            Recorded on the segment events (``event``, ``sweep``, ``refresh``, ``recover``).
        only : set of str, optional
            Restrict to these segment ids.
        """
        if not user_ids:
            return 0
        now = self.clock()
        with evaluation_session(self.store.engine) as session:
            return self._evaluate(session, user_ids, types, now, cause, only)

    def _evaluate(self, session, user_ids, types, now, cause, only) -> int:
        compiled = self.compiled(session)
        chosen = [c for c in compiled.values() if only is None or c.segment_id in only]
        if types is None:  # a pass over everyone (refresh, sweep, recovery): one list for all
            selected = dict.fromkeys(user_ids, chosen)
            candidates = chosen
        else:
            selected = {u: [c for c in chosen if c.triggered_by(types.get(u))] for u in user_ids}
            candidates = {c.segment_id: c for cs in selected.values() for c in cs}.values()
        reading = [c for c in candidates if c.needs_events]
        event_types = frozenset().union(*(c.event_types for c in reading))
        lookback = _widest((c.lookback for c in reading), now)
        members = self.store.segments.memberships(session, user_ids)
        static = {u: m & self._static for u, m in members.items()}
        customers = load_customers(
            session, user_ids, now=now, event_types=event_types, lookback=lookback, static=static
        )
        if types is not None:
            self._rescore_rfm(session, customers, types, now)
        changes = []
        for user_id, customer in customers.items():
            matcher, current = Matcher(customer, now, compiled), members[user_id]
            for c in selected[user_id]:
                inside, was = matcher.segment(c.segment_id), c.segment_id in current
                if inside != was:
                    changes.append((c.segment_id, user_id, "entry" if inside else "exit", None))
        written = self.store.segments.apply_changes(session, changes, now, cause)
        seqs = {u: c.doc["seq"] for u, c in customers.items() if c.doc.get("seq") is not None}
        self.store.segments.clear_pending(session, seqs)
        return written

    def _rescore_rfm(self, session, customers, types, now) -> None:
        """Scores of customers who just purchased, against the recorded quintile edges."""
        buyers = [u for u, t in types.items() if "purchase" in t and u in customers]
        cut = self.store.segments.get_state(rfm.STATE_NAME, session) if buyers else None
        if not cut:
            return
        table = CustomerAggregate.__table__
        for user in buyers:
            doc = customers[user].doc
            r, f, m = rfm.score_customer(
                doc.get("last_purchase_at"), doc["purchase_count"], doc["revenue"], cut, now
            )
            doc.update(rfm_r=r, rfm_f=f, rfm_m=m, rfm_group=rfm.group_of(r, f, m))
            stmt = update(table).where(table.c.user_id == user)
            session.execute(stmt.values(rfm_r=r, rfm_f=f, rfm_m=m))

    def recover(self) -> int:
        """Evaluate every customer whose committed events were not evaluated yet."""
        done = 0
        while users := self.store.segments.pending_users(CHUNK):
            done += len(users)
            self.evaluate(users, cause="recover")
        if done:
            logger.info("segment evaluation resumed for %d customer(s)", done)
        return done

    def all_customers(self, chunk: int = CHUNK) -> Iterator[list[str]]:
        """Every customer id with a profile, in chunks (keyset order)."""
        after = ""
        while True:
            with read_session(self.store.engine) as session:
                stmt = select(UserProfile.user_id).where(UserProfile.user_id > after)
                ids = list(session.scalars(stmt.order_by(UserProfile.user_id).limit(chunk)))
            if not ids:
                return
            yield ids
            after = ids[-1]

    def evaluate_all(self, *, cause: str, only: set[str] | None = None, progress=None) -> int:
        """Re-evaluate every customer (``only`` these segments); returns entries + exits."""
        written = 0
        for number, ids in enumerate(self.all_customers()):
            self.keep_statistics(number)
            written += self.evaluate(ids, cause=cause, only=only)
            if progress is not None:
                progress(len(ids))
        return written

    def keep_statistics(self, chunk_number: int) -> None:
        """During a pass over many customers: the store's statistics refreshed before the first
        chunk and every ``STATISTICS_EVERY`` chunks after (see
        :meth:`recsys.store.segments.SegmentStore.refresh_statistics`)."""
        if chunk_number % STATISTICS_EVERY == 0:
            self.store.segments.refresh_statistics()

    def sweep(self) -> int:
        """Recover, then re-evaluate the time-dependent segments for every customer."""
        self.recover()
        with read_session(self.store.engine) as session:
            timed = {c.segment_id for c in self.compiled(session).values() if c.time_dependent}
        written = self.evaluate_all(cause="sweep", only=timed) if timed else 0
        at = self.clock().isoformat()
        self.store.segments.put_state(SWEEP_STATE, {"at": at, "changes": written})
        return written

    def sweep_due(self, interval_s: float) -> bool:
        """Whether the last sweep is older than ``interval_s`` seconds (or never ran)."""
        last = self.store.segments.get_state(SWEEP_STATE)
        if not last:
            return True
        return (self.clock() - datetime.fromisoformat(last["at"])).total_seconds() >= interval_s

    def preview(self, node: Any, sample: int = 20) -> dict[str, Any]:
        """Count and a sample of the customers matching an unsaved definition."""
        now, count, found = self.clock(), 0, []
        for ids in self.all_customers():
            with read_session(self.store.engine) as session:
                compiled = dict(self.compiled(session))
                compiled["__preview__"] = compile_segments(
                    {**_nodes(compiled), "__preview__": node}
                )["__preview__"]
                c = compiled["__preview__"]
                members = self.store.segments.memberships(session, ids)
                static = {u: m & self._static for u, m in members.items()}
                types = frozenset(c.event_types) if c.needs_events else frozenset()
                customers = load_customers(
                    session, ids, now=now, event_types=types, lookback=c.lookback, static=static
                )
            for user_id, customer in customers.items():
                if Matcher(customer, now, compiled).segment("__preview__"):
                    count += 1
                    if len(found) < sample:
                        found.append(user_id)
        return {"count": count, "sample": found}


@contextmanager
def evaluation_session(engine: Engine) -> Iterator[Session]:
    """A write transaction whose commit, on SQLite, skips the fsync (``synchronous=NORMAL``).

    Safe because of the watermark: the event transaction (synced) marked the customers pending,
    and only this transaction clears the mark, so if a power cut loses this commit, the
    memberships, segment events and mark are lost together and :meth:`SegmentEngine.recover`
    evaluates the customers again. A process crash loses nothing either way (WAL).
    """
    if engine.dialect.name != "sqlite":
        with write_session(engine) as session:
            yield session
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA synchronous=NORMAL")
        try:
            with write_session(conn) as session:
                yield session
        finally:
            raw.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")


def _nodes(compiled: dict[str, Compiled]) -> dict[str, Any]:
    return {sid: c.node for sid, c in compiled.items()}


def _widest(lookbacks: Iterable[Any], now: datetime) -> Any:
    """The earliest start of ``lookbacks`` (spans before ``now`` or times); ``None``: all."""
    starts = []
    for lookback in lookbacks:
        if lookback is None:
            return None
        starts.append(now - lookback if hasattr(lookback, "total_seconds") else lookback)
    return min(starts) if starts else None
