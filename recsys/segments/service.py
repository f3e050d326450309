"""Managing segments: create, change and delete definitions (references checked, cycles
refused), save static segments (audiences), install the built-in RFM groups, report stats."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from recsys.errors import ConflictError, InvalidInputError
from recsys.segments import definitions as d
from recsys.segments.engine import SegmentEngine
from recsys.store import Store, write_session

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def rfm_segment_id(group: str) -> str:
    """Id of the built-in segment of a group: ``Can't Lose Them`` -> ``rfm-cant-lose-them``."""
    return "rfm-" + re.sub(r"[^a-z0-9]+", "-", group.lower().replace("'", "")).strip("-")


def _references(node: Any) -> list[tuple[str, str]]:
    return [(path, n.segment_id) for path, n in d.walk(node) if isinstance(n, d.InSegment)]


class SegmentService:
    """The segment catalogue over a store, with its real-time engine.

    Parameters
    ----------
    store : Store
    engine : SegmentEngine, optional
        Evaluates new and changed segments; one is made when not given.
    """

    def __init__(self, store: Store, engine: SegmentEngine | None = None) -> None:
        self.store = store
        self.engine = engine or SegmentEngine(store)

    def check_references(self, segment_id: str, node: Any) -> None:
        """Every ``in_segment`` names a stored segment and no reference chain returns here."""
        graph: dict[str, list[str]] = {}
        for row in self.store.segments.all():
            if row["definition"] is not None:
                graph[row["id"]] = [
                    t for _, t in _references(d.parse_definition(row["definition"]))
                ]
            else:
                graph[row["id"]] = []
        for path, target in _references(node):
            if target not in graph and target != segment_id:
                raise d.SegmentDefinitionError(f"{path}.segment_id", f"unknown segment {target!r}")
        graph[segment_id] = [t for _, t in _references(node)]
        for path, target in _references(node):
            chain = self._path_back(graph, target, segment_id, [segment_id, target])
            if chain:
                raise d.SegmentDefinitionError(
                    f"{path}.segment_id", "a cycle of segments: " + " -> ".join(chain)
                )

    def _path_back(self, graph, start: str, goal: str, chain: list[str]) -> list[str] | None:
        if start == goal:
            return chain
        for nxt in graph.get(start, []):
            if nxt not in chain[1:]:
                found = self._path_back(graph, nxt, goal, [*chain, nxt])
                if found:
                    return found
        return None

    def create(
        self,
        name: str,
        definition: Any,
        *,
        segment_id: str | None = None,
        description: str = "",
        actor: str = "",
        kind: str = "rule",
        evaluate: bool = True,
    ) -> dict[str, Any]:
        """Store a rule segment and evaluate every customer against it; returns the segment.

        Raises
        ------
        SegmentDefinitionError
            The definition is invalid (message starts with its JSON path).
        ConflictError
            ``segment_id`` is taken.
        """
        node = definition if not isinstance(definition, dict) else d.parse_definition(definition)
        if segment_id is None:
            segment_id = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50] or "segment"
            segment_id += "-" + uuid.uuid4().hex[:8]
        elif not _ID.match(segment_id):
            raise InvalidInputError(
                f"id: {segment_id!r} is not a segment id (lower-case letters, digits, '-', '_', "
                "'.'; at most 64 characters, starting with a letter or digit)"
            )
        self.check_references(segment_id, node)
        row = self.store.segments.create(
            {
                "id": segment_id,
                "name": name,
                "description": description,
                "kind": kind,
                "definition": d.dump(node),
                "created_by": actor,
            }
        )
        self.engine.invalidate()
        if evaluate:
            self.engine.evaluate_all(cause="created", only={segment_id})
        return row

    def update(self, segment_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ``name``, ``description``, ``active`` or ``definition`` and re-evaluate the
        segment and the segments that reference it."""
        current = self.store.segments.get(segment_id)
        changes = dict(changes)
        if "definition" in changes:
            if current["kind"] != "rule":
                raise ConflictError(
                    f"segment {segment_id!r} is {current['kind']}; its rule is fixed"
                )
            node = d.parse_definition(changes["definition"])
            self.check_references(segment_id, node)
            changes["definition"] = d.dump(node)
        row = self.store.segments.update(segment_id, changes)
        self.engine.invalidate()
        if row["active"] and row["definition"] is not None:
            self.engine.evaluate_all(cause="changed", only=self._dependents(segment_id))
        elif not row["active"]:
            self._clear(segment_id)
        return row

    def _dependents(self, segment_id: str) -> set[str]:
        out, grew = {segment_id}, True
        rows = [r for r in self.store.segments.all() if r["definition"] is not None]
        while grew:
            grew = False
            for row in rows:
                refs = {t for _, t in _references(d.parse_definition(row["definition"]))}
                if row["id"] not in out and refs & out:
                    out.add(row["id"])
                    grew = True
        return out

    def _clear(self, segment_id: str) -> None:
        """Exit every member (an inactive segment has none)."""
        after = None
        while page := self.store.segments.members(segment_id, after=after, limit=1000):
            with write_session(self.store.engine) as session:
                changes = [(segment_id, m["user_id"], "exit", None) for m in page]
                self.store.segments.apply_changes(session, changes, self.engine.clock(), "off")
            after = page[-1]["user_id"]

    def delete(self, segment_id: str) -> int:
        """Delete a segment no other segment references; returns how many members it had."""
        users = sorted(self._dependents(segment_id) - {segment_id})
        if users:
            raise ConflictError(f"segment {segment_id!r} is used by {', '.join(users)}")
        members = self.store.segments.delete(segment_id)
        self.engine.invalidate()
        return members

    def save_static(
        self, name: str, members: list[tuple[str, float | None]], *, segment_id: str | None = None,
        description: str = "", actor: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """Store a static segment (an audience) with its members and their scores."""
        segment_id = segment_id or "audience-" + uuid.uuid4().hex[:12]
        with write_session(self.store.engine) as session:
            row = self.store.segments.create(
                {"id": segment_id, "name": name, "description": description, "kind": "static",
                 "definition": None, "created_by": actor},
                session,
            )  # fmt: skip
            changes = [(segment_id, user, "entry", score) for user, score in members]
            self.store.segments.apply_changes(session, changes, self.engine.clock(), "saved")
        self.engine.invalidate()
        return row

    def install_rfm_groups(self, evaluate: bool = True) -> list[str]:
        """Create the 11 built-in RFM group segments that are missing; returns their ids
        (``evaluate=False``: leave their members to the caller's full re-evaluation)."""
        existing = {r["id"] for r in self.store.segments.all()}
        made = []
        for group in d.RFM_GROUPS:
            segment_id = rfm_segment_id(group)
            if segment_id not in existing:
                self.create(
                    group,
                    {"type": "rfm", "group": group},
                    segment_id=segment_id,
                    description=f"Built-in RFM group {group!r}",
                    kind="rfm",
                    actor="system",
                    evaluate=evaluate,
                )
                made.append(segment_id)
        return made

    def stats(self, segment_id: str, days: int = 30) -> dict[str, Any]:
        """Current size, and size, entries and exits per UTC day for the last ``days`` days."""
        if not 1 <= days <= 366:
            raise InvalidInputError(f"days: must be between 1 and 366, got {days}")
        self.store.segments.get(segment_id)
        now = self.engine.clock()
        size = self.store.segments.size(segment_id)
        changes = self.store.segments.daily_changes(segment_id, days, now)
        return _stats(segment_id, size, changes, days, now)

    def stats_of_all(self, days: int = 30) -> dict[str, dict[str, Any]]:
        """:meth:`stats` of every segment, by id, in three queries whatever their number."""
        if not 1 <= days <= 366:
            raise InvalidInputError(f"days: must be between 1 and 366, got {days}")
        now = self.engine.clock()
        ids = [row["id"] for row in self.store.segments.all()]
        sizes = self.store.segments.sizes()
        changes = self.store.segments.daily_changes_of(ids, days, now)
        return {i: _stats(i, sizes.get(i, 0), changes[i], days, now) for i in ids}


def _stats(
    segment_id: str, size: int, changes: dict[str, list[int]], days: int, now: datetime
) -> dict[str, Any]:
    sizes, running = [0] * days, size
    for day in range(days - 1, -1, -1):  # walk back from today's end size
        sizes[day] = running
        running -= changes["entries"][day] - changes["exits"][day]
    start = now.date() - timedelta(days=days - 1)
    return {
        "segment_id": segment_id,
        "size": size,
        "days": [
            {
                "date": (start + timedelta(days=i)).isoformat(),
                "size": sizes[i],
                "entries": changes["entries"][i],
                "exits": changes["exits"][i],
            }
            for i in range(days)
        ],
    }
