"""The online engine: personalised, similar-item and cross-sell answers with business filters."""

from recsys.recommend.engine import (
    Answer,
    RecommendationEngine,
    RecommendRequest,
    UnknownItemError,
)
from recsys.recommend.filters import Catalogue, Filters

__all__ = [
    "Answer",
    "Catalogue",
    "Filters",
    "RecommendRequest",
    "RecommendationEngine",
    "UnknownItemError",
]
