"""The request types of the online engine and its answer.

Each request type names the :class:`~recsys.recommend.engine.RecommendationEngine` method that
answers it (``method``; its fields are that method's keyword arguments), so one dispatch
(``RecommendationEngine.answer_many``) serves every operation and a new operation is one
request dataclass plus one engine method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar

from recsys.recommend.filters import Filters


@dataclass
class Answer:
    """One response: items best first, how they were found, and the model version."""

    items: list[dict]
    strategy: str
    model_version: str
    meta: dict = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        return [row["item_id"] for row in self.items]


@dataclass
class Request:
    """Base of the request types; ``method`` names the engine method that answers one."""

    method: ClassVar[str]

    def arguments(self) -> dict:
        """The fields as keyword arguments of the engine method (not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RecommendRequest(Request):
    """One personalised request (see :meth:`RecommendationEngine.recommend`); batched."""

    method: ClassVar[str] = "recommend"
    user_id: str
    k: int = 10
    events: object = None
    filters: Filters | None = None
    now: float | None = None


@dataclass
class SimilarRequest(Request):
    """Items like one item (see :meth:`RecommendationEngine.similar_items`)."""

    method: ClassVar[str] = "similar_items"
    item_id: str
    k: int = 10
    filters: Filters | None = None


@dataclass
class CrossSellRequest(Request):
    """What goes with a basket (see :meth:`RecommendationEngine.cross_sell`)."""

    method: ClassVar[str] = "cross_sell"
    basket: Sequence[str]
    k: int = 10
    user_id: str | None = None
    events: object = None
    filters: Filters | None = None
    categories: Mapping[str, str] | None = None  # item id -> category of unknown basket items


@dataclass
class CategoriesRequest(Request):
    """The served catalogue's categories (see :meth:`RecommendationEngine.categories`)."""

    method: ClassVar[str] = "categories"


@dataclass
class RecentlyShownRequest(Request):
    """What was recommended to a customer lately (see
    :meth:`RecommendationEngine.recently_shown`); for data exports."""

    method: ClassVar[str] = "recently_shown"
    user_id: str


__all__ = [
    "Answer",
    "CategoriesRequest",
    "CrossSellRequest",
    "RecentlyShownRequest",
    "RecommendRequest",
    "Request",
    "SimilarRequest",
]
