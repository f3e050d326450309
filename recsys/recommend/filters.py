"""Business filters over the catalogue: what may be recommended to whom, as boolean masks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.data.frame import pd


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
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and (not np.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Filters:
        values = dict(values or {})
        for name in ("categories", "exclude_categories"):
            if values.get(name) is not None:
                values[name] = tuple(str(c) for c in values[name])
        if values.get("exclude_categories") is None:
            values.pop("exclude_categories", None)
        return cls(**values)


class Catalogue:
    """Item metadata aligned with the model's item indices, as arrays for vectorised filtering."""

    def __init__(self, item_ids: np.ndarray, items: pd.DataFrame | None) -> None:
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
        self._category_codes = pd.Index(pd.unique(self.category))
        self.category_code = self._category_codes.get_indexer(self.category)

    def __len__(self) -> int:
        return len(self.item_ids)

    def category_mask(self, names) -> np.ndarray:
        codes = self._category_codes.get_indexer(list(names))
        return np.isin(self.category_code, codes[codes >= 0])

    def allowed(self, filters: Filters) -> np.ndarray:
        """Items allowed by the catalogue-level filters (stock, category, price)."""
        mask = np.ones(len(self), dtype=bool)
        if filters.in_stock:
            mask &= self.in_stock
        if filters.categories is not None:
            mask &= self.category_mask(filters.categories)
        if filters.exclude_categories:
            mask &= ~self.category_mask(filters.exclude_categories)
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


def _column(table: pd.DataFrame, name: str, n: int, default) -> np.ndarray:
    if name not in table:
        return np.full(n, default, dtype=object)
    values = table[name].to_numpy(dtype=object)
    missing = pd.isna(table[name]).to_numpy()
    values[missing] = default
    return values
