"""Request and response bodies of the campaign and template routes (the definition is
:class:`recsys.campaigns.definitions.Campaign`, so OpenAPI documents every trigger and step)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recsys.campaigns.definitions import Campaign
from serving.schemas import Id

EXAMPLE = {
    "name": "Cart abandonment",
    "trigger": {"type": "event", "event_type": "add_to_cart"},
    "exit_on": {"event_type": "purchase"},
    "reentry": {"policy": "after_days", "days": 7},
    "start": "wait",
    "steps": {
        "wait": {"type": "wait", "hours": 1, "next": "mail"},
        "mail": {"type": "send", "channel": "email", "template": "cart",
                 "recommendations": {"kind": "cross_sell", "k": 4}},
    },
}  # fmt: skip


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignIn(_Body):
    """A new campaign (a draft unless ``status`` says ``active``)."""

    id: str | None = Field(default=None, max_length=64, description="Made from the name if absent.")
    status: Literal["draft", "active"] = "draft"
    definition: Campaign = Field(json_schema_extra={"examples": [EXAMPLE]})


class CampaignUpdate(_Body):
    """A new definition for a draft or paused campaign."""

    definition: Campaign


class StatusIn(_Body):
    status: Literal["draft", "active", "paused", "archived"]


class CampaignOut(BaseModel):
    id: str
    name: str
    status: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]


class TriggerIn(_Body):
    user_ids: list[Id] = Field(min_length=1, max_length=10_000)
    data: dict[str, Any] | None = Field(default=None, description="Kept with the enrolment.")


class TriggerOut(BaseModel):
    campaign_id: str
    enrolled: int
    skipped: int = Field(description="Not enrolled: re-entry policy or enrolled now.")


class TemplateIn(_Body):
    subject: str = Field(default="", max_length=1000)
    text: str = Field(default="", max_length=100_000)
    html: str = Field(default="", max_length=200_000)


class TemplateOut(TemplateIn):
    id: str
    updated_at: datetime


class TemplateList(BaseModel):
    templates: list[TemplateOut]


class PreviewIn(_Body):
    """Render a stored template (``template_id``) or a given one for a customer."""

    user_id: Id
    template_id: str | None = Field(default=None, max_length=64)
    template: TemplateIn | None = None
    k: int = Field(default=4, ge=1, le=50, description="Recommended items in the preview.")


class PreviewOut(BaseModel):
    subject: str
    text: str
    html: str
    items: list[str]


class MessageOut(BaseModel):
    send_id: int
    campaign_id: str
    user_id: str
    step_id: str
    arm: str | None
    channel: str
    status: str
    recipient: str | None
    subject: str
    text: str
    html: str
    items: list[str]
    created_at: datetime


class MessageList(BaseModel):
    messages: list[MessageOut]
    next_after: int | None = Field(description="Pass as `after` for the next page.")


class DeadLetterOut(BaseModel):
    id: int
    send_id: int
    campaign_id: str
    user_id: str
    url: str
    error: str
    attempts: int
    at: datetime


class UnsubscribeOut(BaseModel):
    user_id: str
    channel: str
    unsubscribed: bool
