"""Canonical data: schemas, validated loaders, data-set adapters and the interaction matrix."""

from recsys.data.errors import DataValidationError
from recsys.data.schemas import EVENT_TYPES, EVENTS, ITEMS, USERS

__all__ = ["DataValidationError", "EVENTS", "EVENT_TYPES", "ITEMS", "USERS"]
