"""Request and response bodies of the HTTP API (the OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from recsys.data.event_check import text_problem

ID_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not blank, no NUL


def clean_text(value: str) -> str:
    """Text every store backend can hold: no NUL characters (PostgreSQL refuses them) and no
    lone surrogates (JSON ``\\ud800`` escapes; they cannot be encoded as UTF-8)."""
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def clean_id(value: str) -> str:
    """An id: text as in :func:`clean_text` that is not blank (stored ids never are)."""
    if not value.strip():
        raise ValueError("must not be blank")
    return clean_text(value)


Text = Annotated[str, AfterValidator(clean_text)]
Id = Annotated[
    str,
    Field(min_length=1, max_length=255, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(clean_id),
]
IdPath = Annotated[
    str,
    Path(min_length=1, max_length=255, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(clean_id),
]


class EventsIn(BaseModel):
    """A batch of shop events. Each event is validated on its own: bad ones are rejected with a
    reason while the good ones are stored."""

    events: list[dict[str, Any]] = Field(
        description="Events with user_id, item_id, event_type (view, click, add_to_cart, "
        "remove_from_cart, wishlist, purchase, rate, open, interaction), optional timestamp "
        "(ISO-8601 or unix seconds; default now), quantity, value, session_id, properties, and an "
        "optional event_id that makes re-delivery idempotent.",
        json_schema_extra={
            "examples": [[{"user_id": "u1", "item_id": "i9", "event_type": "add_to_cart"}]]
        },
    )


class Rejection(BaseModel):
    index: int = Field(description="Position of the event in the request's list.")
    field: str | None = Field(description="Field at fault.")
    problem: str


class EventsOut(BaseModel):
    accepted: int = Field(description="Events committed to the store (new or re-delivered).")
    duplicates: int = Field(description="Of the accepted, how many were already stored.")
    rejected: list[Rejection]


class ScoredItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    category: str | None = None
    price: float | None = None
    in_stock: bool | None = None


class RecommendationsOut(BaseModel):
    items: list[ScoredItem]
    strategy: str = Field(description="personalised, session, popular, similar or cross-sell.")
    model_version: str = Field(description="Registered model version that answered.")
    user_id: str | None = None
    item_id: str | None = None


HintText = Annotated[str, Field(max_length=255)]


class CrossSellIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Id] = Field(min_length=1, max_length=100, description="Item ids in the basket.")
    user_id: Id | None = Field(default=None, description="Personalises the answer when given.")
    k: int = Field(default=10, ge=1, description="How many items to return (at most max_k).")
    in_stock: bool = True
    category: list[Text] | None = Field(
        default=None, description="Only these categories (any case; an empty list: any)."
    )
    exclude_category: list[Text] | None = Field(
        default=None, description="Never these categories (any case)."
    )
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    # plain strings: a hint is only looked up, never stored (the schema states every rule)
    categories: dict[Annotated[str, Field(min_length=1, max_length=255)], HintText] | None = Field(
        default=None,
        max_length=100,
        description="Category of basket items the model does not know yet (item id -> "
        "category): they get what goes with that category. Entries for known items are ignored.",
    )


class CategoryCount(BaseModel):
    category: str = Field(description="As the catalogue spells it; filters match any case.")
    items: int = Field(description="Items of the served model in this category.")


class CategoriesOut(BaseModel):
    categories: list[CategoryCount]
    model_version: str = Field(description="Registered model version that answered.")


class ErasureOut(BaseModel):
    receipt_id: str
    user_id: str
    erased_at: str
    deleted: dict[str, int]


class ModelInfo(BaseModel):
    version: str
    model_uri: str
    kind: str
    loaded_at: str
    n_items: int
    n_users: int
    index: dict[str, Any]
    metrics: dict[str, Any]
    example_user_id: str | None = None
    example_item_id: str | None = None


class ReloadOut(BaseModel):
    previous_version: str | None
    version: str
    changed: bool


class FieldProblem(BaseModel):
    field: str = Field(description="Where: path.<name>, query.<name> or body.<path>.")
    problem: str


class Problem(BaseModel):
    """Every 4xx answer: ``detail`` says what is wrong (one message, or one entry per field)."""

    detail: str | list[FieldProblem]


def problem(description: str) -> dict:
    """An OpenAPI ``responses`` entry for an error answered with a ``Problem`` body."""
    return {"model": Problem, "description": description}


BAD_BODY = {400: problem("The request body cannot be decoded (not UTF-8 JSON)")}

V1_ERRORS = {
    401: problem("Missing, unknown or revoked API key"),
    403: problem("The API key's role does not allow this route"),
    422: problem("Invalid input; the detail names each field and what is wrong with it"),
}
