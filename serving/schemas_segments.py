"""Request and response bodies of the segment routes (the definition tree is
:data:`recsys.segments.definitions.Node`, so OpenAPI documents every node type)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsys.segments.definitions import Node
from serving.schemas import Id, Text

EXAMPLE = {
    "type": "and",
    "children": [
        {
            "type": "performed",
            "event_type": "purchase",
            "category": "shoes",
            "count": {"op": "gte", "value": 2},
            "window": {"seconds": 2592000},
        },
        {"type": "not", "child": {"type": "rfm", "group": "Lost"}},
    ],
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentIn(_Body):
    """A new rule segment."""

    id: str | None = Field(
        default=None,
        description="Lower-case letters, digits, '-', '_', '.'; made from the name when absent.",
        max_length=64,
    )
    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=2000)
    definition: Node = Field(json_schema_extra={"examples": [EXAMPLE]})


class SegmentUpdate(_Body):
    """Fields to change (absent ones stay)."""

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=2000)
    active: bool | None = None
    definition: Node | None = None


class SegmentOut(BaseModel):
    id: str
    name: str
    description: str
    kind: str = Field(description="rule, static (an audience) or rfm (built-in group).")
    definition: dict | None
    active: bool
    size: int
    created_at: datetime
    updated_at: datetime


class SegmentList(BaseModel):
    segments: list[SegmentOut]


class PreviewIn(_Body):
    definition: Node
    sample: int = Field(default=20, ge=0, le=1000)


class PreviewOut(BaseModel):
    count: int
    sample: list[str]


class Member(BaseModel):
    user_id: str
    entered_at: datetime
    score: float | None = None


class MembersOut(BaseModel):
    members: list[Member]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class DayStats(BaseModel):
    date: str
    size: int
    entries: int
    exits: int


class StatsOut(BaseModel):
    segment_id: str
    size: int
    days: list[DayStats]


class UserSegment(BaseModel):
    segment_id: str
    name: str
    entered_at: datetime


class UserSegmentsOut(BaseModel):
    user_id: Id
    segments: list[UserSegment]


class DeletedOut(BaseModel):
    id: str
    members_removed: int


class SaveAs(_Body):
    """Save the audience as a static segment (campaigns can target it)."""

    name: Text = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, max_length=64, description="Default: made up.")
    description: Text = Field(default="", max_length=2000)


class AffinityIn(_Body):
    """The customers most likely to buy an item or a category (give exactly one)."""

    # Absent, not null, so that the spec can say "exactly one" (oneOf of the required keys).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["item_id"]}, {"required": ["category"]}]},
    )

    item_id: Id = Field(default=None, description="An item of the served model.")
    category: Text = Field(default=None, min_length=1, max_length=200)
    n: int = Field(default=100, ge=1, le=100_000)
    save: SaveAs | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AffinityIn:
        if (self.item_id is None) == (self.category is None):
            raise ValueError("give exactly one of item_id and category")
        return self


class LookalikeIn(_Body):
    """The customers most similar to a seed segment's members, none of them in it."""

    segment_id: str = Field(min_length=1, max_length=64)
    n: int = Field(default=100, ge=1, le=100_000)
    save: SaveAs | None = None


class AudienceMember(BaseModel):
    user_id: str
    score: float


class AudienceOut(BaseModel):
    model_version: str
    members: list[AudienceMember] = Field(description="Best first.")
    segment: SegmentOut | None = Field(description="The saved static segment, when asked to.")
