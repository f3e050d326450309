"""The online engine: personalised, similar-item and cross-sell answers with business filters."""

from recsys.recommend.engine import (
    Answer,
    RecommendationEngine,
    RecommendRequest,
    UnknownItemError,
)
from recsys.recommend.evaluation import ServedModel
from recsys.recommend.filters import Catalogue, Eligible, Filters
from recsys.recommend.scoring import PreparedState, RequestScorer

__all__ = [
    "Answer",
    "Catalogue",
    "Eligible",
    "Filters",
    "PreparedState",
    "RecommendRequest",
    "RecommendationEngine",
    "RequestScorer",
    "ServedModel",
    "UnknownItemError",
]
