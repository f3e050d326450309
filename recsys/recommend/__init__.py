"""The online engine: personalised, similar-item and cross-sell answers with business filters."""

from recsys.recommend.engine import RecommendationEngine, UnknownItemError
from recsys.recommend.evaluation import ServedModel
from recsys.recommend.filters import Catalogue, Eligible, Filters, UnknownCategoryError
from recsys.recommend.requests import (
    Answer,
    CategoriesRequest,
    CrossSellRequest,
    RecommendRequest,
    Request,
    SimilarRequest,
)
from recsys.recommend.scoring import PreparedState, RequestScorer

__all__ = [
    "Answer",
    "Catalogue",
    "CategoriesRequest",
    "CrossSellRequest",
    "Eligible",
    "Filters",
    "PreparedState",
    "RecommendRequest",
    "RecommendationEngine",
    "Request",
    "RequestScorer",
    "ServedModel",
    "SimilarRequest",
    "UnknownCategoryError",
    "UnknownItemError",
]
