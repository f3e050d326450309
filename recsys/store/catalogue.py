"""The live catalogue: items upserted by id, read back, marked inactive, watched for changes.

Records are validated by the canonical validator (:mod:`recsys.data.records`, the rules of the
item loader) against :data:`ITEM_RECORDS`, the loader's ``ITEMS`` columns plus the two the store
adds: ``stock`` (a stock level) and ``active`` (false once the shop deleted the item).

An upsert writes the fields a record carries and keeps the stored value of the fields it
leaves out (send ``null`` to clear one), so a stock feed can send ``{"item_id", "stock"}``
alone. Two fields are always written: ``active`` (true unless the record says false: sending
an item means it exists) and ``updated_at``. Without ``in_stock``, a record that carries a
``stock`` level sets ``in_stock = stock > 0``; an explicit ``in_stock`` wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.orm import Session

from recsys.data.frame import pd
from recsys.data.records import Rejection, validate_records
from recsys.data.schemas import ITEMS, Column, Schema
from recsys.errors import NotFoundError
from recsys.store.catalogue_feed import next_change_seq
from recsys.store.checks import id_problem, json_object, unstorable_field
from recsys.store.db import dialect_insert, read_session, write_session
from recsys.store.tables import Item, utcnow

logger = logging.getLogger(__name__)

ITEM_RECORDS = Schema(
    "items",
    (
        *ITEMS.columns,
        Column("stock", "int", minimum=0),
        Column("active", "bool", default=True, nullable=False),
    ),
    key=("item_id",),
)
"""What an item record may carry: the loader's ``ITEMS`` columns plus ``stock`` and ``active``."""
ITEM_FIELDS: tuple[str, ...] = tuple(ITEM_RECORDS.names)
MAX_ITEMS_PER_CALL = 1000
_ALWAYS_WRITTEN = frozenset({"item_id", "active", "updated_at"})


class CatalogueItemNotFound(NotFoundError):
    """No item with this id is in the catalogue."""


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert did: ``accepted`` items written; ``rejected`` one per bad record (its
    index in the batch, the field, the problem), as ``POST /v1/events`` reports them."""

    accepted: int
    rejected: list[Rejection] = field(default_factory=list)


def _scalar(value: Any) -> Any:
    return None if value is None or pd.isna(value) else value  # NaN, pd.NA


def table_row(canonical: Mapping[str, Any], present: Iterable[str], now: datetime) -> dict:
    """One canonical item (a row of a validated ``ITEM_RECORDS`` frame) as a table row.

    ``present`` names the fields the source carried; the row's ``"_written"`` key holds the
    columns an update of an existing item writes (see the module doc).
    """
    stock, price = _scalar(canonical.get("stock")), _scalar(canonical.get("price"))
    written = (set(present) & set(ITEM_FIELDS)) | _ALWAYS_WRITTEN
    in_stock = bool(canonical.get("in_stock", True))
    if "in_stock" not in present and "stock" in present and stock is not None:
        in_stock = stock > 0
        written.add("in_stock")
    return {
        "item_id": canonical["item_id"],
        "title": canonical.get("title") or None,
        "category": canonical.get("category") or None,
        "price": None if price is None else float(price),
        "in_stock": in_stock,
        "stock": None if stock is None else int(stock),
        "active": bool(canonical.get("active", True)),
        "attributes": json_object(canonical.get("attributes")),
        "updated_at": now,
        "_written": frozenset(written),
    }


def write_items(session: Session, rows: Sequence[dict]) -> int:
    """Upsert :func:`table_row` rows in the caller's transaction; one statement per set of
    written columns, items in id order (concurrent writers lock rows in the same order)."""
    groups: dict[frozenset, list[dict]] = {}
    seq = next_change_seq(session)  # serving replicas pick the rows up by it
    for row in sorted(rows, key=lambda r: r["item_id"]):
        values = {k: v for k, v in row.items() if k != "_written"} | {"change_seq": seq}
        groups.setdefault(row["_written"] | {"change_seq"}, []).append(values)
    for written, values in groups.items():
        stmt = dialect_insert(session, Item.__table__)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"],
            set_={name: stmt.excluded[name] for name in sorted(written) if name != "item_id"},
        )
        session.execute(stmt, values)
    return len(rows)


def _as_dict(item: Item) -> dict[str, Any]:
    return {a.key: getattr(item, a.key) for a in Item.__mapper__.column_attrs}


class ItemStore:
    """The catalogue table: upsert, get, deactivate, changes since a time, export.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`recsys.store.make_engine`, schema initialised.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(self, records: Sequence[Any]) -> UpsertResult:
        """Validate ``records`` one by one and write the valid ones in one transaction.

        Parameters
        ----------
        records : sequence of dict
            Item records (fields of :data:`ITEM_FIELDS`); ``item_id`` is required.

        Returns
        -------
        UpsertResult
            Committed when this returns; invalid records are listed, never written.
        """
        rejected: list[Rejection] = []
        usable: list[int] = []
        for position, record in enumerate(records):
            found = None
            if isinstance(record, Mapping):
                unknown = sorted(set(record) - set(ITEM_FIELDS), key=str)
                if unknown:
                    found = (
                        str(unknown[0]),
                        f"unknown field(s) {', '.join(map(repr, unknown))}; put free-form "
                        "fields under 'attributes'",
                    )
                else:
                    found = unstorable_field(record)
            if found is None:
                usable.append(position)
            else:
                rejected.append(Rejection(position, *found))
        frame, rejections = validate_records([records[p] for p in usable], ITEM_RECORDS)
        rejected += [Rejection(usable[r.index], r.field, r.problem) for r in rejections]
        now, rows = utcnow(), []
        for local, canonical in zip(frame.index, frame.to_dict("records"), strict=True):
            position = usable[local]
            problem = id_problem("item_id", canonical["item_id"])
            if problem:
                rejected.append(Rejection(position, "item_id", problem))
                continue
            rows.append(table_row(canonical, records[position].keys(), now))
        rejected.sort(key=lambda r: r.index)
        if rows:
            with write_session(self.engine) as session:
                write_items(session, rows)
            logger.debug("upserted %d items (%d rejected)", len(rows), len(rejected))
        return UpsertResult(len(rows), rejected)

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The item as a dict (every column), or None when the catalogue has no such item."""
        with read_session(self.engine) as session:
            item = session.get(Item, item_id)
            return None if item is None else _as_dict(item)

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Items whose id starts with ``query`` or whose title contains it (any case), by id."""
        query = query.strip()
        if not query:
            return []
        stmt = (
            select(Item)
            .where(or_(Item.item_id.startswith(query, autoescape=True),
                       Item.title.icontains(query, autoescape=True)))
            .order_by(Item.item_id)
            .limit(limit)
        )  # fmt: skip
        with read_session(self.engine) as session:
            return [_as_dict(item) for item in session.scalars(stmt)]

    def deactivate(self, item_id: str) -> dict[str, Any]:
        """Mark the item inactive (deleted from the shop; kept for history) and return it.

        Raises
        ------
        CatalogueItemNotFound
            No item with this id.
        """
        with write_session(self.engine) as session:
            stmt = update(Item).where(Item.item_id == item_id)
            seq = next_change_seq(session)
            done = session.execute(
                stmt.values(active=False, updated_at=utcnow(), change_seq=seq)
            ).rowcount
            if not done:
                raise CatalogueItemNotFound(f"item {item_id!r} is not in the catalogue")
            return _as_dict(session.get(Item, item_id))

    def changed_since(self, since: datetime | None = None, limit: int = 10_000) -> list[dict]:
        """Items written after ``since`` (all when None), oldest change first."""
        stmt = select(Item).order_by(Item.updated_at, Item.item_id).limit(limit)
        if since is not None:
            stmt = stmt.where(Item.updated_at > since)
        with read_session(self.engine) as session:
            return [_as_dict(item) for item in session.scalars(stmt)]

    def last_change(self) -> datetime | None:
        """When any item was last written (a cheap poll for "has the catalogue changed?")."""
        with read_session(self.engine) as session:
            return session.scalar(select(func.max(Item.updated_at)))

    def count(self, active_only: bool = False) -> int:
        """Number of items (only active ones with ``active_only``)."""
        stmt = select(func.count()).select_from(Item)
        if active_only:
            stmt = stmt.where(Item.active.is_(True))
        with read_session(self.engine) as session:
            return int(session.scalar(stmt) or 0)

    def export_frame(self) -> pd.DataFrame:
        """The catalogue as a frame with the columns of :data:`ITEM_FIELDS`, by item id."""
        cols = Item.__table__.c
        stmt = select(*(cols[name] for name in ITEM_FIELDS)).order_by(cols.item_id)
        with read_session(self.engine) as session:
            rows = session.execute(stmt).all()
        return pd.DataFrame(rows, columns=list(ITEM_FIELDS))
