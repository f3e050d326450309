"""The catalogue's change feed: what serving replicas poll to keep their filters live.

Every write to the ``items`` table (upsert, deactivate, bulk import) stamps the rows it writes
with ``change_seq``, a number taken inside the write transaction while item writers are
serialised (SQLite: the database write lock of ``BEGIN IMMEDIATE``; PostgreSQL: a transaction
advisory lock). The numbers therefore grow in commit order: a reader that has applied every
change up to ``n`` finds every later change with ``change_seq > n`` (no commit can appear later
with a smaller number, which a wall-clock ``updated_at`` does not guarantee). "Has anything
changed?" is one index look-up, ``max(change_seq)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from recsys.store.db import is_postgres, read_session
from recsys.store.tables import Item

_LAST_SEQ = select(func.max(Item.change_seq))
FEED_COLUMNS = ("item_id", "title", "category", "price", "in_stock", "active", "attributes")
"""The fields of a change: what the serving filters and a new item's content vector read."""


def next_change_seq(session: Session) -> int:
    """The ``change_seq`` of the items the caller's write transaction writes (see module doc)."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('recsys.items.change_seq'))"))
    return int(session.scalar(select(func.max(Item.change_seq))) or 0) + 1


@dataclass(frozen=True)
class CatalogueChanges:
    """Items changed after a watermark (``FEED_COLUMNS`` dicts) and the new watermark."""

    rows: list[dict]
    seq: int


class CatalogueFeed:
    """Reads the catalogue's changes (see the module doc).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The store's engine (schema initialised).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def last_seq(self) -> int:
        """The newest ``change_seq`` (0 for an empty or never-changed catalogue): one index read
        on a plain connection (no ORM session: this runs before every answered batch)."""
        with self.engine.connect() as conn:
            return int(conn.execute(_LAST_SEQ).scalar() or 0)

    def changes(self, after: int | None = None) -> CatalogueChanges:
        """Every item written after watermark ``after`` (``None``: the whole catalogue).

        The watermark is read before the rows, so a change committed in between is returned
        now and again next time (applying a change twice is harmless) but never missed.
        """
        columns = [Item.__table__.c[name] for name in FEED_COLUMNS]
        with read_session(self.engine) as session:
            seq = int(session.scalar(select(func.max(Item.change_seq))) or 0)
            stmt = select(*columns).order_by(Item.item_id)
            if after is not None:
                stmt = stmt.where(Item.change_seq > int(after))
            rows = [dict(zip(FEED_COLUMNS, row, strict=True)) for row in session.execute(stmt)]
        return CatalogueChanges(rows, seq)
