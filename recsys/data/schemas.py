"""Canonical schemas for events, items and users.

Every loader, the store and the HTTP API speak these column names and types. Ids are strings
everywhere (a number in a file becomes its decimal text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "str", "timestamp", "float", "int", "bool", "json", "event_type"]

EVENT_TYPES: tuple[str, ...] = (
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "wishlist",
    "purchase",
    "rate",
    "open",
    "interaction",
)
"""Closed set of event types. ``interaction`` is the neutral type of files that carry none
(MovieLens ratings, plain user/item logs); ``open`` is an e-mail open and needs no item."""

EVENTS_WITHOUT_ITEM: frozenset[str] = frozenset({"open"})


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    nullable: bool = True
    minimum: float | None = None
    default: object = None


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


EVENTS = Schema(
    "events",
    (
        Column("user_id", "id", required=True, nullable=False),
        Column("item_id", "id", required=True),  # empty only for EVENTS_WITHOUT_ITEM
        Column("timestamp", "timestamp", required=True, nullable=False),
        Column("event_type", "event_type", default="interaction", nullable=False),
        Column("quantity", "int", minimum=0, default=1, nullable=False),
        Column("value", "float"),
        Column("session_id", "str"),
        Column("properties", "json"),
    ),
)

ITEMS = Schema(
    "items",
    (
        Column("item_id", "id", required=True, nullable=False),
        Column("title", "str"),
        Column("category", "str"),
        Column("price", "float", minimum=0),
        Column("in_stock", "bool", default=True, nullable=False),
        Column("attributes", "json"),
    ),
    key=("item_id",),
)

USERS = Schema(
    "users",
    (
        Column("user_id", "id", required=True, nullable=False),
        Column("email", "str"),
        Column("country", "str"),
        Column("consents", "json"),
        Column("attributes", "json"),
    ),
    key=("user_id",),
)

SCHEMAS = {s.name: s for s in (EVENTS, ITEMS, USERS)}
