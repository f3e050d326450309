"""The online engine: personalised, similar-item and cross-sell answers with business filters.

The request types and filters import without torch (the API process builds requests but never
runs the engine); the engine-side names load on first use.
"""

from importlib import import_module

from recsys.recommend.filters import Catalogue, Eligible, Filters, UnknownCategoryError
from recsys.recommend.requests import (
    Answer,
    CategoriesRequest,
    CrossSellRequest,
    RecentlyShownRequest,
    RecommendRequest,
    Request,
    SimilarRequest,
)

_ENGINE_SIDE = {
    "RecommendationEngine": "recsys.recommend.engine",
    "UnknownItemError": "recsys.recommend.engine",
    "ServedModel": "recsys.recommend.evaluation",
    "PreparedState": "recsys.recommend.scoring",
    "RequestScorer": "recsys.recommend.scoring",
}


def __getattr__(name: str):
    if name in _ENGINE_SIDE:
        return getattr(import_module(_ENGINE_SIDE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Answer",
    "Catalogue",
    "CategoriesRequest",
    "CrossSellRequest",
    "Eligible",
    "Filters",
    "PreparedState",
    "RecentlyShownRequest",
    "RecommendRequest",
    "RecommendationEngine",
    "Request",
    "RequestScorer",
    "ServedModel",
    "SimilarRequest",
    "UnknownCategoryError",
    "UnknownItemError",
]
