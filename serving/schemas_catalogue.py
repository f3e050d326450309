"""Bodies of the catalogue (``/v1/items``) and customer (``/v1/users/{id}``) routes."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from recsys.store.customers import EMAIL_PATTERN
from serving.schemas import Rejection, Text

TIME_ZONES = sorted(zoneinfo.available_timezones())  # the spec lists what the check accepts


class ItemsIn(BaseModel):
    """A batch of catalogue items, upserted by ``item_id``. Each item is checked on its own:
    bad ones are rejected with a reason while the good ones are stored."""

    items: list[dict[str, Any]] = Field(
        description="Items with item_id and any of title, category, price (>= 0), in_stock, "
        "stock (>= 0; without in_stock it sets in_stock = stock > 0), active (default true) "
        "and attributes (a JSON object). Fields left out keep their stored value; null clears.",
        json_schema_extra={
            "examples": [
                [{"item_id": "sku-1", "title": "Mug", "category": "kitchen", "price": 9.5}],
                [{"item_id": "sku-1", "stock": 0}],
            ]
        },
    )


class ItemsOut(BaseModel):
    accepted: int = Field(description="Items written (inserted or updated), committed.")
    rejected: list[Rejection]


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    price: float | None
    in_stock: bool
    stock: int | None
    active: bool = Field(description="False once the item was deleted from the shop.")
    attributes: dict[str, Any] | None
    updated_at: datetime


class CustomerIn(BaseModel):
    """A customer's attributes. Fields left out keep their stored value; null clears one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "ann@example.com",
                    "country": "DE",
                    "time_zone": "Europe/Berlin",
                    "consents": {"email": True, "sms": False},
                    "attributes": {"tier": "gold"},
                }
            ]
        },
    )

    email: Text | None = Field(
        default=None,
        max_length=320,
        description="Checked: name@domain.tld.",
        json_schema_extra={"pattern": EMAIL_PATTERN},
    )
    country: Text | None = Field(default=None, max_length=64)
    time_zone: Text | None = Field(
        default=None,
        max_length=64,
        description="IANA name, e.g. Europe/Berlin or UTC.",
        json_schema_extra={"enum": TIME_ZONES},
    )
    consents: dict[Text, StrictBool] | None = Field(
        default=None, description="Per channel: true (may contact) or false (opted out)."
    )
    attributes: dict[str, Any] | None = Field(default=None, description="Free-form JSON object.")


class CustomerOut(BaseModel):
    user_id: str
    email: str | None
    country: str | None
    time_zone: str | None
    consents: dict[str, bool] | None
    attributes: dict[str, Any] | None
    updated_at: datetime | None = Field(description="When the attributes were last written.")
    first_seen: datetime | None = Field(description="Earliest event (aggregates below too).")
    last_seen: datetime | None
    event_count: int
    purchase_count: int
    revenue: float = Field(description="Sum of purchase values.")
