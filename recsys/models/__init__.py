"""Models: baselines (popularity, ItemKNN, EASE) and the trained retrieval/blend models."""

from recsys.models.base import NotFittedError, Recommender
from recsys.models.blend import BlendScorer, UserState
from recsys.models.covisit import CoVisitationModel
from recsys.models.ease import EASEModel
from recsys.models.hybrid import HybridModel, RetrievalModel
from recsys.models.itemknn import ItemKNNModel
from recsys.models.popularity import PopularityModel
from recsys.models.two_tower import TwoTowerModel
from recsys.models.weighting import DEFAULT_EVENT_WEIGHTS, EventWeighting

BASELINES = {"pop": PopularityModel, "itemknn": ItemKNNModel, "ease": EASEModel}
MODELS = BASELINES | {
    "covisit": CoVisitationModel,
    "twotower": TwoTowerModel,
    "retrieval": RetrievalModel,
    "default": HybridModel,
}
"""Every model by name; each takes ``device=`` and fits with ``fit(train, items, users)``."""

__all__ = [
    "BASELINES",
    "DEFAULT_EVENT_WEIGHTS",
    "MODELS",
    "BlendScorer",
    "CoVisitationModel",
    "EASEModel",
    "EventWeighting",
    "HybridModel",
    "ItemKNNModel",
    "NotFittedError",
    "PopularityModel",
    "Recommender",
    "RetrievalModel",
    "TwoTowerModel",
    "UserState",
]
