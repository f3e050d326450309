"""Catalogue changes applied to a running engine: stock, price, category, active state, new items.

The engine's catalogue starts as the bundle's item table (the catalogue at training time). The
service then feeds it the store's changes (``recsys.store.catalogue_feed``) with
:func:`apply_changes`: rows of known items overwrite their filter state (a new
:class:`~recsys.recommend.filters.Catalogue` replaces the old one, so answers in flight keep a
consistent view); rows of items the model never saw append new items with a content vector
(``recsys.recommend.new_items``), which also go into the ANN index. Everything an answer reads
per item (ids, catalogue arrays, popularity prior, backfill order, new-item vectors) grows
together under the engine's write lock (:class:`ReadWriteLock`), so an answer never sees one
grown and another not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from recsys.data.frame import pd
from recsys.errors import InvalidInputError
from recsys.recommend.filters import Catalogue
from recsys.recommend.new_items import ItemContent

logger = logging.getLogger(__name__)

CHANGE_FIELDS = ("item_id", "title", "category", "price", "in_stock", "active")


class ReadWriteLock:
    """Many readers (answers) or one writer (a catalogue change) at a time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._readers:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def change_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Change rows (dicts with ``item_id`` and any of the other ``CHANGE_FIELDS``) as a frame,
    the last row of an item winning."""
    frame = pd.DataFrame(list(rows))
    if len(frame) and "item_id" not in frame:
        raise InvalidInputError("catalogue changes need an item_id per row")
    frame = frame[[c for c in CHANGE_FIELDS if c in frame]]
    if not len(frame):
        return pd.DataFrame({"item_id": pd.Series([], dtype=object)})
    frame = frame.assign(item_id=frame["item_id"].astype(str))
    return frame.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def apply_changes(engine, rows: Sequence[dict]) -> dict:
    """Apply catalogue change ``rows`` to ``engine`` (a ``RecommendationEngine``) in place;
    the caller holds the engine's write lock. Returns ``{"updated": n, "added": m}``.

    A field a row leaves out, or sends as None, keeps its value.
    """
    frame = change_frame(rows)
    if not len(frame):
        return {"updated": 0, "added": 0}
    positions = engine.items_index.get_indexer(frame["item_id"].to_numpy(dtype=object))
    fresh = positions < 0
    positions[fresh] = len(engine.item_ids) + np.arange(int(fresh.sum()))
    catalogue: Catalogue = engine.catalogue.changed(positions, frame)
    item_ids = catalogue.item_ids.astype(str).astype(object)
    new_items, prior, order = engine.new_items, engine.prior, engine.popular_order
    unseen = np.sort(positions[positions >= engine.n_trained])
    if len(unseen):
        content = engine.item_content()
        vectors, proxies = content.vectors(catalogue.category[unseen], catalogue.price[unseen])
        new_items = new_items.with_items(unseen, vectors, proxies)
        prior = new_items.extend(engine.requests.prior)  # a new item: its proxies' popularity
        order = np.argsort(-prior, kind="stable")
        catalogue.order = order
        engine.index.add(unseen.astype(np.int64), vectors)
    engine.item_ids, engine.items_index = item_ids, pd.Index(item_ids)
    engine.new_items, engine.prior, engine.popular_order = new_items, prior, order
    engine.catalogue = catalogue
    added = int(fresh.sum())
    logger.info("catalogue: %d item(s) changed, %d new", len(frame) - added, added)
    return {"updated": len(frame) - added, "added": added}


def trained_content(engine) -> ItemContent:
    """The content-vector builder of ``engine``'s bundle (its trained items' catalogue)."""
    n = engine.n_trained
    trained = Catalogue(engine.item_ids[:n], engine.bundle.items)
    return ItemContent(engine.bundle.arrays, engine.bundle.config,
                       engine.requests.item_vectors, trained)  # fmt: skip
