"""Models: baselines (popularity, ItemKNN, EASE) and the trained retrieval/blend models."""

from recsys.models.base import NotFittedError, Recommender
from recsys.models.ease import EASEModel
from recsys.models.itemknn import ItemKNNModel
from recsys.models.popularity import PopularityModel

BASELINES = {"pop": PopularityModel, "itemknn": ItemKNNModel, "ease": EASEModel}

__all__ = [
    "BASELINES",
    "EASEModel",
    "ItemKNNModel",
    "NotFittedError",
    "PopularityModel",
    "Recommender",
]
