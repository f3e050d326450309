"""Rule segment definitions: a typed JSON tree of nodes (pydantic, so OpenAPI documents it).

A definition is one node; ``and``/``or`` hold ``children`` and ``not`` holds ``child``, nested
freely. Leaves test customer attributes and profile fields (``attribute``), the customer's events
(``performed``, ``not_performed_since``), the RFM group (``rfm``), the embedding cluster
(``cluster``), another segment (``in_segment``) or a hashed bucket (``random_bucket``)::

    {"type": "and", "children": [
        {"type": "performed", "event_type": "purchase", "category": "shoes",
         "count": {"op": "gte", "value": 2}, "window": {"seconds": 2592000}},
        {"type": "not", "child": {"type": "rfm", "group": "Lost"}}]}

:func:`parse_definition` turns JSON into nodes or raises :class:`SegmentDefinitionError` whose
message names the JSON path of the offending part: ``definition.children[1].window.seconds:
must be > 0``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from recsys.data.schemas import EVENT_TYPES
from recsys.errors import DocumentError
from recsys.segments.fields import check_path

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
RFM_GROUPS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalist",
    "Recent Customers",
    "Promising",
    "Customers Needing Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)
RfmGroup = Literal[RFM_GROUPS]  # type: ignore[valid-type]
Scalar = str | int | float | bool


class SegmentDefinitionError(DocumentError):
    """A segment definition that cannot be accepted; the message starts with its JSON path."""


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Node):
    """The last ``seconds`` before now, or absolute ``start``/``end`` (either may be open)."""

    seconds: int | None = Field(default=None, gt=0, description="Within the last N seconds.")
    start: datetime | None = Field(default=None, description="From this time (inclusive).")
    end: datetime | None = Field(default=None, description="Until this time (exclusive).")

    @model_validator(mode="after")
    def _one_form(self) -> Window:
        absolute = self.start is not None or self.end is not None
        if (self.seconds is None) == (not absolute):
            raise ValueError("give either seconds, or start and/or end")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2025-01-01T00:00:00Z)")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Count(_Node):
    """How many matching events: ``gte`` (at least), ``lt`` (fewer than) or ``eq`` ``value``."""

    op: Literal["gte", "lt", "eq"] = "gte"
    value: int = Field(default=1, ge=0)


class And(_Node):
    type: Literal["and"]
    children: list[Node] = Field(min_length=1)


class Or(_Node):
    type: Literal["or"]
    children: list[Node] = Field(min_length=1)


class Not(_Node):
    type: Literal["not"]
    child: Node


class Attribute(_Node):
    """A customer attribute or profile field (``country``, ``attributes.vip``, ``revenue``,
    ``category_purchases.shoes``, ``days_since_last_purchase`` ...) compared with ``value``."""

    type: Literal["attribute"]
    path: str = Field(min_length=1, max_length=200)
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists", "not_exists"]
    value: Scalar | list[Scalar] | None = None

    @field_validator("path")
    @classmethod
    def _known_path(cls, path: str) -> str:
        check_path(path)
        return path

    @model_validator(mode="after")
    def _value_fits(self) -> Attribute:
        if self.op in ("exists", "not_exists"):
            if self.value is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("op 'in' needs a non-empty list value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a single value")
        elif self.op in ("gt", "gte", "lt", "lte") and isinstance(self.value, bool):
            raise ValueError(f"op {self.op!r} needs a number or text value")
        return self


class Performed(_Node):
    """The customer performed ``event_type`` (optionally on items of ``category``, on
    ``item_ids``, with ``properties`` equal to the given values) ``count`` times in ``window``
    (default: ever)."""

    type: Literal["performed"]
    event_type: EventType
    category: str | None = Field(default=None, min_length=1)
    item_ids: list[str] | None = Field(default=None, min_length=1)
    properties: dict[str, Scalar] | None = None
    count: Count = Count()
    window: Window | None = None


class NotPerformedSince(_Node):
    """No ``event_type`` for at least ``seconds``: since the customer's last ``since`` event
    (e.g. added to cart and no purchase for an hour), or, without ``since``, since the last
    ``event_type`` (or the customer's first event when there was none)."""

    type: Literal["not_performed_since"]
    event_type: EventType
    since: EventType | None = None
    seconds: int = Field(gt=0)


class Rfm(_Node):
    """The customer's named RFM group (only customers with a purchase have one)."""

    type: Literal["rfm"]
    group: RfmGroup


class Cluster(_Node):
    """The customer's embedding cluster (ids are stable across retrains)."""

    type: Literal["cluster"]
    cluster_id: int = Field(ge=0)


class InSegment(_Node):
    """Member of another segment (references may not form a cycle)."""

    type: Literal["in_segment"]
    segment_id: str = Field(min_length=1, max_length=64)


class RandomBucket(_Node):
    """A stable hashed share of the customers (holdouts): ``percent`` of them, per ``salt``."""

    type: Literal["random_bucket"]
    percent: float = Field(gt=0, le=100)
    salt: str = Field(default="", max_length=64)


Node = Annotated[
    And
    | Or
    | Not
    | Attribute
    | Performed
    | NotPerformedSince
    | Rfm
    | Cluster
    | InSegment
    | RandomBucket,
    Field(discriminator="type"),
]
"""Any segment node (discriminated by ``type``)."""
NODE_TYPES = frozenset(
    ("and", "or", "not", "attribute", "performed", "not_performed_since", "rfm", "cluster")
    + ("in_segment", "random_bucket")
)
for _model in (And, Or, Not):
    _model.model_rebuild()
_NODE = TypeAdapter(Node)


def json_path(loc: tuple[Any, ...], root: str) -> str:
    """``('children', 1, 'performed', 'window', 'seconds')`` -> ``root.children[1].window.seconds``
    (the discriminator tags pydantic puts in the location are dropped)."""
    out = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in NODE_TYPES and (
            i == 0 or loc[i - 1] == "child" or isinstance(loc[i - 1], int)
        ):
            continue
        else:
            out += f".{part}"
    return out


def problem_of(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"unknown node type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "a node needs a 'type'"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "too_short":
        return "must not be empty"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def describe_errors(exc: ValidationError, root: str = "definition") -> list[tuple[str, str]]:
    """``(json path, problem)`` for every error pydantic found in a definition."""
    return [(json_path(tuple(e["loc"]), root), problem_of(e)) for e in exc.errors()]


def parse_definition(data: Any, root: str = "definition") -> Node:
    """Validate JSON-like ``data`` as a segment definition.

    Raises
    ------
    SegmentDefinitionError
        Naming the JSON path (under ``root``) of the first offending part.
    """
    try:
        return _NODE.validate_python(data)
    except ValidationError as exc:
        path, problem = describe_errors(exc, root)[0]
        raise SegmentDefinitionError(path, problem) from None


def walk(node: Node, path: str = "definition"):
    """Yield ``(json path, node)`` for ``node`` and every node below it, depth first."""
    yield path, node
    if isinstance(node, And | Or):
        for i, child in enumerate(node.children):
            yield from walk(child, f"{path}.children[{i}]")
    elif isinstance(node, Not):
        yield from walk(node.child, f"{path}.child")


def dump(node: Node) -> dict[str, Any]:
    """The definition as plain JSON (what the store keeps)."""
    return node.model_dump(mode="json", exclude_none=True)
