"""Business filters over the catalogue: what may be recommended to whom, as boolean masks.

Category names match without regard to case; a name no item carries is refused with the close
matches (a typo must not silently empty, or fail to narrow, an answer).
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.data.frame import pd
from recsys.errors import InvalidInputError


class UnknownCategoryError(InvalidInputError):
    """A category filter names a category no item of the served catalogue carries."""


@dataclass(frozen=True)
class Filters:
    """Which items an answer may contain.

    Attributes
    ----------
    exclude_purchased : drop items the user has purchased.
    exclude_seen : drop every item the user has interacted with.
    in_stock : only items in stock.
    categories : only these categories (None: any).
    exclude_categories : never these categories.
    min_price, max_price : price range (items without a price fail a price filter).
    suppress_recent : drop items recommended to this user within the suppression window.
    """

    exclude_purchased: bool = True
    exclude_seen: bool = False
    in_stock: bool = True
    categories: tuple[str, ...] | None = None
    exclude_categories: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    suppress_recent: bool = False

    def __post_init__(self) -> None:
        for name in ("exclude_purchased", "exclude_seen", "in_stock", "suppress_recent"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise InvalidInputError(
                    f"{name} must be true or false, got {getattr(self, name)!r}"
                )
        for name in ("categories", "exclude_categories"):
            value = getattr(self, name)
            if value is None:
                if name == "exclude_categories":
                    object.__setattr__(self, name, ())
                continue
            if isinstance(value, str):  # one category, not its characters
                value = (value,)
            try:
                object.__setattr__(self, name, tuple(str(c) for c in value))
            except TypeError:
                raise InvalidInputError(
                    f"{name} must be a list of category names, got {value!r}"
                ) from None
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
            if not np.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise InvalidInputError(
                f"min_price {self.min_price} is above max_price {self.max_price}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Filters:
        """Filters from a JSON-like dict; unknown names and bad values raise
        ``InvalidInputError``."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInputError(
                f"unknown filter(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**values)


MASK_CACHE_SIZE = 32  # catalogue masks kept per distinct filter combination


class Catalogue:
    """Item metadata aligned with the model's item indices, as arrays for vectorised filtering.

    Catalogue-level masks are cached per filter combination (the few a shop uses are computed
    once, not per request); the cached arrays are read-only. ``order`` lists the item indices in
    backfill order (most popular first; default: index order). Inactive items (deleted from the
    shop) pass no filter. A catalogue is not changed in place: :meth:`changed` returns a new one.
    """

    def __init__(
        self, item_ids: np.ndarray, items: pd.DataFrame | None, order: np.ndarray | None = None
    ) -> None:
        n = len(item_ids)
        self.item_ids = np.asarray(item_ids, dtype=object)
        table = pd.DataFrame({"item_id": self.item_ids.astype(str)})
        if items is not None and len(items):
            meta = items.drop_duplicates("item_id").assign(
                item_id=lambda f: f["item_id"].astype(str)
            )
            table = table.merge(meta, on="item_id", how="left")
        self.title = _column(table, "title", n, "")
        self.category = _column(table, "category", n, "")
        self.price = pd.to_numeric(_column(table, "price", n, np.nan), errors="coerce").astype(
            float
        )
        stock = _column(table, "in_stock", n, True)
        self.in_stock = np.asarray(pd.Series(stock).fillna(True).astype(bool))
        self.active = np.asarray(pd.Series(_column(table, "active", n, True)).astype(bool))
        self.order = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
        self._index_categories()

    def _index_categories(self) -> None:
        folded = np.array([str(c).casefold() for c in self.category], dtype=object)
        self._folded = pd.Index(pd.unique(folded))  # one code per category, case folded
        self.category_code = self._folded.get_indexer(folded)
        first = np.unique(self.category_code, return_index=True)[1]
        self._names = self.category[first]  # by code, spelled as the code's first item spells it
        self._masks: OrderedDict[tuple, CatalogueMask] = OrderedDict()
        self._lock = threading.Lock()

    def changed(self, positions, rows: pd.DataFrame, order: np.ndarray | None = None) -> Catalogue:
        """A new catalogue with ``rows`` written at ``positions`` (this one is left as it is,
        so answers in flight keep a consistent view); positions from ``len(self)`` on append
        items. ``rows`` has ``item_id`` and any of title, category, price, in_stock, active
        (a missing value keeps the current one, so an item the store describes in part keeps
        its training-time metadata); ``order`` is the new backfill order (default: this one's,
        new items last)."""
        positions = np.asarray(positions, dtype=np.int64)
        n = max(len(self), int(positions.max()) + 1) if len(positions) else len(self)
        out = object.__new__(Catalogue)
        for name, fill in (("item_ids", None), ("title", ""), ("category", ""),
                           ("price", np.nan), ("in_stock", True), ("active", True)):  # fmt: skip
            current = getattr(self, name)
            grown = np.full(n, fill, dtype=current.dtype)
            grown[: len(current)] = current
            if name in rows:  # a missing value keeps the current one
                given = (~pd.isna(rows[name])).to_numpy()
                grown[positions[given]] = rows[name].to_numpy(dtype=object)[given]
            setattr(out, name, grown)
        out.item_ids[positions] = rows["item_id"].to_numpy(dtype=object)
        out.price = pd.to_numeric(pd.Series(out.price), errors="coerce").to_numpy(float)
        out.in_stock, out.active = out.in_stock.astype(bool), out.active.astype(bool)
        if order is None:
            order = np.concatenate([self.order, np.arange(len(self), n, dtype=np.int64)])
        out.order = np.asarray(order, dtype=np.int64)
        out._index_categories()
        return out

    def __len__(self) -> int:
        return len(self.item_ids)

    def category_mask(self, names, field: str = "categories") -> np.ndarray:
        """Items whose category is one of ``names`` (any case).

        Raises
        ------
        UnknownCategoryError
            When a name is no item's category; the message names ``field`` and close matches.
        """
        names = [str(name) for name in names]
        codes = self._folded.get_indexer([name.casefold() for name in names])
        unknown = [n for n, code in zip(names, codes, strict=True) if code < 0 or not n.strip()]
        if unknown:
            raise UnknownCategoryError(self._unknown(unknown[0], field))
        return np.isin(self.category_code, codes)

    def category_codes(self, names) -> np.ndarray:
        """Category code per name (any case), -1 for a name no item carries."""
        return self._folded.get_indexer([str(name).casefold() for name in names])

    def categories(self) -> list[tuple[str, int]]:
        """``(category, items)`` per category, by name; items without a category are left out.

        Names that differ only in case are one category, spelled as its first item spells it.
        """
        counts = np.bincount(self.category_code, minlength=len(self._names))
        rows = [(str(n), int(c)) for n, c in zip(self._names, counts, strict=True) if str(n)]
        return sorted(rows, key=lambda row: (row[0].casefold(), row[0]))

    def _unknown(self, name: str, field: str) -> str:
        known = {str(n).casefold(): str(n) for n in self._names if str(n)}
        close = difflib.get_close_matches(name.casefold(), list(known), n=3, cutoff=0.6)
        message = f"{field}: unknown category {name!r} (names match without regard to case)"
        if close:
            return f"{message}; close matches: {', '.join(known[c] for c in close)}"
        return f"{message}; the catalogue has {len(known)} categories, none close"

    def allowed(self, filters: Filters) -> np.ndarray:
        """Items allowed by the catalogue-level filters (stock, category, price): a new mask."""
        return self.mask(filters).mask.copy()

    def mask(self, filters: Filters) -> CatalogueMask:
        """The cached catalogue-level mask of ``filters`` (computed on first use)."""
        key = _catalogue_key(filters)
        with self._lock:
            found = self._masks.get(key)
            if found is not None:
                self._masks.move_to_end(key)
                return found
        found = CatalogueMask(self._compute(filters), self.order)
        with self._lock:
            self._masks[key] = found
            while len(self._masks) > MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return found

    def _compute(self, filters: Filters) -> np.ndarray:
        mask = self.active.copy()  # deleted from the shop: never recommended
        if filters.in_stock:
            mask &= self.in_stock
        if filters.categories is not None:
            mask &= self.category_mask(filters.categories, "categories")
        if filters.exclude_categories:
            mask &= ~self.category_mask(filters.exclude_categories, "exclude_categories")
        if filters.min_price is not None:
            mask &= self.price >= filters.min_price
        if filters.max_price is not None:
            mask &= self.price <= filters.max_price
        return mask

    def describe(self, index: int) -> dict:
        price = self.price[index]
        return {
            "title": str(self.title[index]) or None,
            "category": str(self.category[index]) or None,
            "price": None if np.isnan(price) else float(price),
            "in_stock": bool(self.in_stock[index]),
        }


class CatalogueMask:
    """One filter combination's read-only mask, its size and (lazily) its items in order."""

    def __init__(self, mask: np.ndarray, order: np.ndarray) -> None:
        mask.setflags(write=False)
        self.mask = mask
        self.count = int(mask.sum())
        self._order = order
        self._lock = threading.Lock()
        self._indices: np.ndarray | None = None
        self._ordered: np.ndarray | None = None

    def indices(self) -> np.ndarray:
        """Allowed item indices, ascending (cached; read-only)."""
        if self._indices is None:
            found = np.flatnonzero(self.mask)
            found.setflags(write=False)
            with self._lock:
                self._indices = found
        return self._indices

    def ordered(self) -> np.ndarray:
        """Allowed item indices in the catalogue's backfill order (cached; read-only)."""
        if self._ordered is None:
            found = self._order[self.mask[self._order]]
            found.setflags(write=False)
            with self._lock:
                self._ordered = found
        return self._ordered


class Eligible:
    """What one request may return: a catalogue mask minus the request's own exclusions
    (the user's purchases or views, recent suppressions, the basket)."""

    def __init__(self, catalogue: CatalogueMask, excluded: np.ndarray | None = None) -> None:
        self.catalogue = catalogue
        self.excluded = (
            np.zeros(0, np.int64) if excluded is None else np.unique(np.asarray(excluded, np.int64))
        )
        inside = self.catalogue.mask[self.excluded] if len(self.excluded) else ()
        self.count = catalogue.count - int(np.count_nonzero(inside))

    def __call__(self, items: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``items`` (indices) may be returned."""
        ok = self.catalogue.mask[items]
        if len(self.excluded) and len(items):
            ok &= ~np.isin(items, self.excluded, kind="sort")
        return ok

    def indices(self) -> np.ndarray:
        """Every eligible item index, ascending."""
        found = self.catalogue.indices()
        return found[self(found)] if len(self.excluded) else found


def _catalogue_key(filters: Filters) -> tuple:
    """The part of ``filters`` that the catalogue mask depends on."""
    categories = filters.categories
    return (
        filters.in_stock,
        None if categories is None else tuple(c.casefold() for c in categories),
        tuple(c.casefold() for c in filters.exclude_categories),
        filters.min_price,
        filters.max_price,
    )


def _column(table: pd.DataFrame, name: str, n: int, default) -> np.ndarray:
    if name not in table:
        return np.full(n, default, dtype=object)
    values = np.array(table[name].to_numpy(dtype=object), dtype=object)  # a writable copy
    missing = pd.isna(table[name]).to_numpy()
    values[missing] = default
    return values
