"""Side features for the two-tower model: item category and price bucket, user attributes.

Every feature becomes an integer code per row (0 = missing / unseen), so a tower adds one
embedding per feature to its id embedding. The vocabularies are plain lists (JSON-ready), so a
serving bundle can encode a new item's features without the training code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from recsys.data.frame import pd

logger = logging.getLogger(__name__)

MAX_CATEGORIES = 1000
NUMERIC_BUCKETS = 8


@dataclass
class FeatureCodes:
    """Integer-coded features of the rows of one table (users or items).

    Attributes
    ----------
    names : feature names.
    codes : (n_rows, n_features) int64; 0 means missing or unseen.
    cardinalities : codes per feature, counting the 0 bucket.
    vocabularies : per feature ``{"kind": "categorical", "values": [...]}`` or
        ``{"kind": "numeric", "edges": [...]}``.
    """

    names: list[str] = field(default_factory=list)
    codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    cardinalities: list[int] = field(default_factory=list)
    vocabularies: list[dict] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def config(self) -> dict:
        """JSON-ready description (names, cardinalities, vocabularies)."""
        return {
            "names": list(self.names),
            "cardinalities": list(self.cardinalities),
            "vocabularies": self.vocabularies,
        }


def encode_column(values, kind: str, vocabulary: dict | None = None):
    """Codes for one column; builds the vocabulary when none is given. Returns (codes, vocab)."""
    series = pd.Series(values)
    if kind == "numeric":
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        if vocabulary is None:
            finite = numbers[np.isfinite(numbers)]
            qs = np.linspace(0, 1, NUMERIC_BUCKETS + 1)[1:-1]
            edges = np.unique(np.quantile(finite, qs)) if len(finite) else np.zeros(0)
            vocabulary = {"kind": "numeric", "edges": [float(e) for e in edges]}
        edges = np.asarray(vocabulary["edges"], dtype=np.float64)
        codes = np.searchsorted(edges, np.nan_to_num(numbers), side="right") + 1
        return np.where(np.isfinite(numbers), codes, 0).astype(np.int64), vocabulary
    text = series.astype(str).to_numpy(dtype=object)
    if vocabulary is None:
        counts = pd.Series(text[~np.isin(text, ("", "nan", "None"))]).value_counts(sort=True)
        vocabulary = {
            "kind": "categorical",
            "values": [str(v) for v in counts.index[:MAX_CATEGORIES]],
        }
    lookup = pd.Index(vocabulary["values"])
    return (lookup.get_indexer(text) + 1).astype(np.int64), vocabulary


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``attributes`` column (JSON text or dicts) expanded into scalar columns (lists and
    dicts dropped)."""
    if "attributes" not in frame:
        return pd.DataFrame(index=frame.index)
    parsed = [
        text
        if isinstance(text, dict)  # as the store gives them
        else json.loads(text)
        if isinstance(text, str) and text.strip().startswith("{")
        else {}
        for text in frame["attributes"]
    ]
    table = pd.DataFrame(parsed, index=frame.index)
    scalar = [
        c for c in table.columns if not table[c].map(lambda v: isinstance(v, (list, dict))).any()
    ]
    return table[scalar]


def _kind(values: pd.Series) -> str | None:
    """numeric, categorical, or None when the column carries no usable signal."""
    present = values.dropna()
    present = present[present.astype(str) != ""]
    if present.empty or present.astype(str).nunique() < 2:
        return None
    if pd.to_numeric(present, errors="coerce").notna().all() and present.astype(str).nunique() > 20:
        return "numeric"
    distinct = present.astype(str).nunique()
    if distinct > 0.5 * len(present) and distinct > 50:
        return None  # an identifier-like column (e-mail, zip code): no shared signal
    return "categorical"


def _encode_table(table: pd.DataFrame, candidates: dict[str, str | None]) -> FeatureCodes:
    names, columns, cards, vocabs = [], [], [], []
    for name, kind in candidates.items():
        kind = kind or _kind(table[name])
        if kind is None:
            continue
        codes, vocab = encode_column(table[name], kind)
        size = len(vocab.get("values", vocab.get("edges", []))) + (
            1 if kind == "categorical" else 2
        )
        names.append(name)
        columns.append(codes)
        cards.append(int(size))
        vocabs.append(vocab)
    codes = np.stack(columns, axis=1) if columns else np.zeros((len(table), 0), dtype=np.int64)
    return FeatureCodes(names, codes, cards, vocabs)


def item_features(items: pd.DataFrame | None, item_ids: np.ndarray) -> FeatureCodes:
    """Category and price-bucket codes for ``item_ids`` (rows missing from ``items`` get 0)."""
    if items is None or "item_id" not in items:
        return FeatureCodes(codes=np.zeros((len(item_ids), 0), dtype=np.int64))
    table = items.drop_duplicates("item_id").set_index(
        items["item_id"].drop_duplicates().astype(str)
    )
    table = table.reindex(pd.Index(np.asarray(item_ids).astype(str)))
    candidates = {}
    if "category" in table and _kind(table["category"]) is not None:
        candidates["category"] = "categorical"
    if "price" in table and pd.to_numeric(table["price"], errors="coerce").notna().sum() > 1:
        candidates["price"] = "numeric"
    features = _encode_table(table, candidates)
    logger.info("item features: %s", features.names or "none")
    return features


def user_features(users: pd.DataFrame | None, user_ids: np.ndarray) -> FeatureCodes:
    """Codes of the users' ``country`` and scalar JSON ``attributes`` (age, gender, ...)."""
    if users is None or "user_id" not in users:
        return FeatureCodes(codes=np.zeros((len(user_ids), 0), dtype=np.int64))
    unique = users.drop_duplicates("user_id")
    table = pd.concat(
        [unique[[c for c in ("country",) if c in unique]], _attributes(unique)], axis=1
    )
    table.index = unique["user_id"].astype(str)
    table = table.reindex(pd.Index(np.asarray(user_ids).astype(str)))
    features = _encode_table(table, {c: None for c in table.columns})
    logger.info("user features: %s", features.names or "none")
    return features
