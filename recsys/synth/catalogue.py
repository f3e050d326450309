"""The synthetic catalogue: categories, items with skewed popularity, prices, brands and the
planted complementary pairs (the cross-sell truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.synth.config import STREAM_CATALOGUE, ShopConfig, rng_for

# (anchor, complement) category pairs: name, median price, consumable. Listed pair by pair so
# that a prefix of the list (small catalogues use fewer categories) keeps whole pairs.
CATEGORY_PAIRS: tuple[tuple[tuple[str, float, bool], tuple[str, float, bool]], ...] = (
    (("coffee machines", 180.0, False), ("coffee", 9.0, True)),
    (("smartphones", 450.0, False), ("phone cases", 18.0, False)),
    (("printers", 140.0, False), ("ink and toner", 30.0, True)),
    (("razors", 25.0, False), ("razor blades", 14.0, True)),
    (("cameras", 520.0, False), ("memory cards", 22.0, False)),
    (("cat food", 12.0, True), ("cat litter", 10.0, True)),
    (("laptops", 900.0, False), ("laptop bags", 45.0, False)),
    (("toothbrushes", 35.0, False), ("toothpaste", 4.0, True)),
    (("shampoo", 7.0, True), ("conditioner", 7.5, True)),
    (("running shoes", 95.0, False), ("sports socks", 12.0, False)),
    (("diapers", 20.0, True), ("baby wipes", 5.0, True)),
    (("headphones", 85.0, False), ("chargers and cables", 16.0, False)),
    (("laundry detergent", 11.0, True), ("fabric softener", 6.0, True)),
    (("tea", 6.0, True), ("mugs", 12.0, False)),
    (("dog food", 28.0, True), ("pet toys", 9.0, False)),
    (("kitchen knives", 60.0, False), ("cutting boards", 22.0, False)),
    (("skincare", 24.0, True), ("cosmetics", 16.0, True)),
    (("yoga mats", 30.0, False), ("water bottles", 15.0, False)),
    (("board games", 35.0, False), ("snacks", 3.5, True)),
    (("sports nutrition", 32.0, True), ("vitamins", 14.0, True)),
)
MIN_CATEGORIES, MAX_CATEGORIES = 20, 2 * len(CATEGORY_PAIRS)

PRICE_SIGMA = 0.45  # lognormal spread of prices around a category's median
IN_STOCK_SHARE = 0.95
ZIPF_EXPONENT = 1.1  # popularity ~ 1 / rank^s within a category
COMPLEMENT_SHARE = 0.5  # share of anchor-category items that get a planted complement

_SYLLABLES = np.array(
    ["nor", "vik", "ta", "lum", "bra", "zen", "ko", "mi", "sol", "ar", "del", "qu", "ri", "ven",
     "ox", "pa", "lin", "dor", "ex", "sy"]
)  # fmt: skip


def n_categories(n_items: int) -> int:
    """Categories for a catalogue of ``n_items``: 20 to 40, growing with log(items), <= items."""
    wanted = int(np.clip(round(8 * np.log10(max(n_items, 1))), MIN_CATEGORIES, MAX_CATEGORIES))
    return min(wanted, n_items)


@dataclass
class Catalogue:
    """Items in internal order (contiguous per category) plus the category tables.

    Attributes
    ----------
    item_ids : pa.StringArray
        External id of every internal item index.
    item_category : ndarray of int64
        Category index per item; items of one category are contiguous.
    category_start : ndarray of int64
        Index of each category's first item (length n_categories + 1).
    price, popularity : ndarray of float64
        Price and within-category popularity weight (Zipf over a random rank) per item.
    complement : ndarray of int64
        Planted complement item per item, -1 for none.
    """

    item_ids: pa.Array
    item_category: np.ndarray
    category_start: np.ndarray
    category_names: list[str]
    category_median: np.ndarray
    consumable: np.ndarray
    price: np.ndarray
    popularity: np.ndarray
    in_stock: np.ndarray
    brand: pa.Array
    complement: np.ndarray
    complement_category: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.item_category)

    @property
    def n_categories(self) -> int:
        return len(self.category_names)

    def items_table(self) -> pa.Table:
        """The ``items`` table in the canonical schema, ordered by item id."""
        cat_names = pa.array(self.category_names, pa.string())
        category = cat_names.take(pa.array(self.item_category))
        noun = pc.utf8_capitalize(category)
        number = 100 + (np.arange(self.n_items) * 7919) % 900
        model = pc.binary_join_element_wise(
            pc.utf8_upper(pc.utf8_slice_codeunits(self.brand, 0, 1)),
            pc.cast(pa.array(number), pa.string()),
            "-",
        )
        title = pc.binary_join_element_wise(self.brand, noun, model, " ")
        consumable = pa.array(np.where(self.consumable[self.item_category], "true", "false"))
        attributes = pc.binary_join_element_wise(
            '{"brand":"', self.brand, '","consumable":', consumable, "}", ""
        )
        table = pa.table(
            {
                "item_id": self.item_ids,
                "title": title,
                "category": category,
                "price": pa.array(self.price, pa.float64()),
                "in_stock": pa.array(self.in_stock, pa.bool_()),
                "attributes": attributes,
            }
        )
        return table.take(pc.sort_indices(self.item_ids))

    def complements_table(self) -> pa.Table:
        """Planted pairs: buying ``item_id`` makes buying ``complement_id`` likely."""
        anchors = np.flatnonzero(self.complement >= 0)
        partners = self.complement[anchors]
        names = pa.array(self.category_names, pa.string())
        table = pa.table(
            {
                "item_id": self.item_ids.take(pa.array(anchors)),
                "complement_id": self.item_ids.take(pa.array(partners)),
                "category": names.take(pa.array(self.item_category[anchors])),
                "complement_category": names.take(pa.array(self.item_category[partners])),
            }
        )
        return table.take(pc.sort_indices(table["item_id"]))


def id_array(total: int, prefix: str, first: int = 0, count: int | None = None) -> pa.Array:
    """Ids ``first .. first + count - 1`` of ``total``, zero-padded so text order is numeric."""
    count = total - first if count is None else count
    width = max(4, len(str(total - 1)))
    numbers = pa.array(np.arange(first, first + count, dtype=np.int64))
    digits = pc.utf8_lpad(pc.cast(numbers, pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _categories(n_cat: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    flat = [entry for pair in CATEGORY_PAIRS for entry in pair][:n_cat]
    names = [name for name, _, _ in flat]
    median = np.array([price for _, price, _ in flat], dtype=np.float64)
    consumable = np.array([flag for _, _, flag in flat], dtype=bool)
    partner = np.full(n_cat, -1, dtype=np.int64)
    anchors = np.arange(0, n_cat - 1, 2)
    partner[anchors] = anchors + 1
    return names, median, consumable, partner


def _category_sizes(n_items: int, n_cat: int, rng: np.random.Generator) -> np.ndarray:
    share = rng.dirichlet(np.full(n_cat, 4.0))
    return 1 + rng.multinomial(n_items - n_cat, share)


def _brands(n_items: int, category_start: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Brand name per item: a few brands per category, a Zipf-like share for each."""
    n_cat = len(category_start) - 1
    sizes = np.diff(category_start)
    n_brands = np.clip(2 + sizes // 40, 3, 12)
    first = np.zeros(n_cat + 1, dtype=np.int64)
    np.cumsum(n_brands, out=first[1:])
    syllables = rng.integers(0, len(_SYLLABLES), size=(int(first[-1]), 3))
    brand_names = pc.utf8_capitalize(
        pa.array(
            np.char.add(
                np.char.add(_SYLLABLES[syllables[:, 0]], _SYLLABLES[syllables[:, 1]]),
                _SYLLABLES[syllables[:, 2]],
            )
        )
    )
    category = np.repeat(np.arange(n_cat), sizes)
    brands_here = n_brands[category]
    u = rng.random(n_items)
    local = np.minimum((brands_here * u**2).astype(np.int64), brands_here - 1)  # skewed shares
    return brand_names.take(pa.array(first[category] + local))


def build_catalogue(config: ShopConfig) -> Catalogue:
    """Draw the catalogue of ``config.items`` items from the seed's catalogue stream."""
    rng = rng_for(config.seed, STREAM_CATALOGUE)
    n_items = config.items
    n_cat = n_categories(n_items)
    names, median, consumable, partner = _categories(n_cat)
    median = median * np.exp(rng.normal(0.0, 0.15, n_cat))  # each shop prices a little differently
    sizes = _category_sizes(n_items, n_cat, rng)
    category_start = np.zeros(n_cat + 1, dtype=np.int64)
    np.cumsum(sizes, out=category_start[1:])
    item_category = np.repeat(np.arange(n_cat), sizes)
    local_index = np.arange(n_items) - category_start[item_category]

    # Zipf popularity over a random rank inside each category.
    rank = np.empty(n_items, dtype=np.int64)
    order = np.lexsort((rng.random(n_items), item_category))
    rank[order] = local_index
    popularity = 1.0 / (rank + 1.0) ** ZIPF_EXPONENT

    price = median[item_category] * rng.lognormal(0.0, PRICE_SIGMA, n_items)
    price = np.maximum(np.round(price, 2), 0.5)
    in_stock = rng.random(n_items) < IN_STOCK_SHARE
    brand = _brands(n_items, category_start, rng)

    complement = np.full(n_items, -1, dtype=np.int64)
    target_cat = partner[item_category]
    chosen = (target_cat >= 0) & (rng.random(n_items) < COMPLEMENT_SHARE)
    chosen_idx = np.flatnonzero(chosen)
    complement[chosen_idx] = CategorySampler(popularity, category_start).sample(
        0, target_cat[chosen_idx], rng.random(len(chosen_idx))
    )
    ids = id_array(n_items, "i").take(pa.array(rng.permutation(n_items)))
    return Catalogue(
        item_ids=ids,
        item_category=item_category,
        category_start=category_start,
        category_names=names,
        category_median=median,
        consumable=consumable,
        price=price,
        popularity=popularity,
        in_stock=in_stock,
        brand=brand,
        complement=complement,
        complement_category=partner,
    )


class CategorySampler:
    """Draws items inside a given category in proportion to per-row weights, vectorised.

    ``weights`` has shape (rows, items) (one row per segment, say) with items contiguous per
    category. Every (row, item) gets ``row * n_categories + category + cumulative share``, so a
    single ``searchsorted`` inverts every row's within-category distribution at once.
    """

    def __init__(self, weights: np.ndarray, category_start: np.ndarray) -> None:
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if (weights <= 0).any():
            raise ValueError("category sampler weights must be positive")
        n_cat = len(category_start) - 1
        item_category = np.repeat(np.arange(n_cat), np.diff(category_start))
        last = category_start[1:] - 1
        cum = np.cumsum(weights, axis=1)
        end = cum[:, last]
        base = np.concatenate([np.zeros((len(weights), 1)), end[:, :-1]], axis=1)
        share = (cum - base[:, item_category]) / (end - base)[:, item_category]
        share[:, last] = 1.0
        offset = np.arange(len(weights))[:, None] * n_cat + item_category[None, :]
        self._cdf = (share + offset).ravel()
        self._n_cat = n_cat
        self._n_items = weights.shape[1]
        self._last = last

    def sample(self, row: np.ndarray | int, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Item index per draw: ``category`` of weight row ``row``, uniform ``u`` in [0, 1)."""
        row = np.asarray(row, dtype=np.int64)
        category = np.asarray(category, dtype=np.int64)
        flat = np.searchsorted(self._cdf, row * self._n_cat + category + u, side="right")
        # u within 2**-53 of 1 can round onto the next category: clamp to the category's end
        return np.minimum(flat - row * self._n_items, self._last[category])
