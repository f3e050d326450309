"""Campaign definitions: a trigger, a graph of named steps and the policies around them (pydantic,
so OpenAPI documents them).

The steps are a dict of ``step id -> step``; ``start`` names the first one and every step names
the one after it (``next``; ``wait_until`` and ``branch`` name one per outcome, ``split`` one per
arm). The graph may not loop, so a step runs at most once per enrolment and ``enrolment:step`` is
a sound idempotency key for what the step sends::

    {"name": "Cart abandonment", "trigger": {"type": "event", "event_type": "add_to_cart"},
     "exit_on": {"event_type": "purchase"}, "start": "wait",
     "steps": {"wait": {"type": "wait", "hours": 1, "next": "mail"},
               "mail": {"type": "send", "channel": "email", "template": "cart"}}}

:func:`parse_campaign` raises :class:`CampaignDefinitionError` naming the JSON path of the first
problem: ``definition.steps.mail.template: is required``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import time
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recsys.data.schemas import EVENT_TYPES
from recsys.errors import DocumentError

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Scalar = str | int | float | bool
CHANNELS = ("email", "webhook", "sms", "push")
STEP_TYPES = ("wait", "wait_until", "branch", "split", "send", "exit")
TRIGGER_TYPES = ("event", "segment", "schedule", "api")
MAX_SECONDS = 10 * 366 * 86400  # ten years: longer waits are mistakes


class CampaignDefinitionError(DocumentError):
    """A campaign definition that cannot be accepted; the message starts with its JSON path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventMatch(_Model):
    """An event of ``event_type`` whose ``properties`` hold these values (all of them)."""

    event_type: EventType
    properties: dict[str, Scalar] = Field(default_factory=dict)

    def matches(self, event: dict[str, Any]) -> bool:
        if event.get("event_type") != self.event_type:
            return False
        props = event.get("properties") or {}
        return all(props.get(k) == v for k, v in self.properties.items())


class EventTrigger(EventMatch):
    type: Literal["event"]


class SegmentTrigger(_Model):
    """Enrol on entering (or leaving) a segment."""

    type: Literal["segment"]
    segment_id: str = Field(min_length=1, max_length=64)
    on: Literal["entry", "exit"] = "entry"


class ScheduleTrigger(_Model):
    """Enrol a segment's members (or every customer) on a cron schedule or every N seconds,
    evaluated in the campaign's time zone."""

    type: Literal["schedule"]
    cron: str | None = None
    interval_seconds: int | None = Field(default=None, gt=0, le=MAX_SECONDS)
    segment_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_form(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give either cron or interval_seconds")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"cron: {self.cron!r} is not a cron expression")
        return self


class ApiTrigger(_Model):
    """Enrol the users named in ``POST /v1/campaigns/{id}/trigger`` (transactional)."""

    type: Literal["api"]


Trigger = Annotated[
    EventTrigger | SegmentTrigger | ScheduleTrigger | ApiTrigger, Field(discriminator="type")
]


class Wait(_Model):
    """Wait a fixed time (the sum of the given parts; more than zero)."""

    type: Literal["wait"]
    seconds: int = Field(default=0, ge=0, le=MAX_SECONDS)
    minutes: int = Field(default=0, ge=0, le=MAX_SECONDS // 60)
    hours: int = Field(default=0, ge=0, le=MAX_SECONDS // 3600)
    days: int = Field(default=0, ge=0, le=MAX_SECONDS // 86400)
    next: str | None = None

    @model_validator(mode="after")
    def _positive(self) -> Wait:
        if self.duration_seconds <= 0:
            raise ValueError("a wait needs a positive duration (seconds, minutes, hours, days)")
        return self

    @property
    def duration_seconds(self) -> int:
        return self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * self.days


class SegmentCondition(_Model):
    """The customer is (``member`` true) or is not in a segment."""

    segment_id: str = Field(min_length=1, max_length=64)
    member: bool = True


class WaitUntil(_Model):
    """Wait for an event or a segment condition, at most ``timeout_seconds``; go on to
    ``on_match`` or ``on_timeout``."""

    type: Literal["wait_until"]
    event: EventMatch | None = None
    segment: SegmentCondition | None = None
    timeout_seconds: int = Field(gt=0, le=MAX_SECONDS)
    on_match: str | None = None
    on_timeout: str | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> WaitUntil:
        if (self.event is None) == (self.segment is None):
            raise ValueError("give either event or segment")
        return self


class Condition(_Model):
    """A profile field (``email``, ``country``, ``attributes.vip``, ``purchase_count``,
    ``revenue``...) compared with ``value``, or segment membership."""

    field: str | None = Field(default=None, min_length=1, max_length=200)
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "exists"] = "eq"
    value: Scalar | None = None
    segment: SegmentCondition | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        if (self.field is None) == (self.segment is None):
            raise ValueError("give either field or segment")
        if self.field is not None and self.op != "exists" and self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        return self


class Branch(_Model):
    type: Literal["branch"]
    condition: Condition
    if_true: str | None = None
    if_false: str | None = None


class Arm(_Model):
    """One A/B arm: a share of the customers (``weight``) going to ``next``; a ``holdout`` arm
    gets nothing and is the baseline of the report."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(gt=0)
    next: str | None = None
    holdout: bool = False

    @model_validator(mode="after")
    def _holdout_ends(self) -> Arm:
        if self.holdout and self.next is not None:
            raise ValueError("a holdout arm gets nothing: it has no next step")
        return self


class Split(_Model):
    type: Literal["split"]
    arms: list[Arm] = Field(min_length=2)

    @field_validator("arms")
    @classmethod
    def _distinct(cls, arms: list[Arm]) -> list[Arm]:
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        return arms


class Recommendations(_Model):
    """Items chosen at send time: ``personal`` for the customer, ``cross_sell`` for the cart
    (or the triggering item). ``model`` is a registry alias (``champion``, ``challenger``) or a
    version number (``"3"``) of the served registered model; none: the model the service serves
    (A/B arms: one send step per arm, each naming its model)."""

    kind: Literal["personal", "cross_sell"] = "personal"
    k: int = Field(default=4, ge=1, le=50)
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    exclude_sent_days: int = Field(default=14, ge=0, le=365)

    @field_validator("model", mode="before")
    @classmethod
    def _version_number(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Send(_Model):
    """Send ``template`` over ``channel`` (``sms``/``push`` are webhook profiles; ``url`` is
    where a webhook, sms or push message is posted)."""

    type: Literal["send"]
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    template: str = Field(min_length=1, max_length=64)
    url: str | None = Field(default=None, pattern=r"^https?://")
    recommendations: Recommendations | None = None
    next: str | None = None

    @model_validator(mode="after")
    def _url(self) -> Send:
        if self.channel != "email" and self.url is None:
            raise ValueError(f"channel {self.channel!r} needs a url")
        return self


class Exit(_Model):
    type: Literal["exit"]


Step = Annotated[Wait | WaitUntil | Branch | Split | Send | Exit, Field(discriminator="type")]


class Reentry(_Model):
    """``once`` ever; ``always`` (whenever not enrolled now); ``after_days`` since the last."""

    policy: Literal["once", "always", "after_days"] = "once"
    days: int | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _days(self) -> Reentry:
        if (self.policy == "after_days") != (self.days is not None):
            raise ValueError("days goes with policy 'after_days' (and only with it)")
        return self


class QuietHours(_Model):
    """No messages between ``start`` and ``end`` in the customer's time zone (they wait)."""

    start: time
    end: time

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time of day without a zone (the customer's zone applies)")
        return value


class Campaign(_Model):
    """A campaign definition (see the module doc)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    time_zone: str = "UTC"
    trigger: Trigger
    start: str = Field(min_length=1)
    steps: dict[str, Step] = Field(min_length=1)
    reentry: Reentry = Reentry()
    exit_on: EventMatch | None = None
    conversion: EventType = "purchase"
    attribution_days: int = Field(default=7, ge=1, le=90)
    quiet_hours: QuietHours | None = None
    rate_limit_per_minute: int | None = Field(default=None, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as 'UTC'"
            ) from None
        return name


def successors(step: Any) -> list[tuple[str, str | None]]:
    """``(field, next step id)`` for each way out of ``step``."""
    if isinstance(step, Wait | Send):
        return [("next", step.next)]
    if isinstance(step, WaitUntil):
        return [("on_match", step.on_match), ("on_timeout", step.on_timeout)]
    if isinstance(step, Branch):
        return [("if_true", step.if_true), ("if_false", step.if_false)]
    if isinstance(step, Split):
        return [(f"arms[{i}].next", a.next) for i, a in enumerate(step.arms)]
    return []


def _check_graph(campaign: Campaign, root: str) -> None:
    if campaign.start not in campaign.steps:
        raise CampaignDefinitionError(f"{root}.start", f"no step named {campaign.start!r}")
    for step_id, step in campaign.steps.items():
        for name, target in successors(step):
            if target is not None and target not in campaign.steps:
                raise CampaignDefinitionError(
                    f"{root}.steps.{step_id}.{name}", f"no step named {target!r}"
                )
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(step_id: str, path: list[str]) -> None:
        state[step_id] = 1
        for name, target in successors(campaign.steps[step_id]):
            if target is None:
                continue
            if state.get(target) == 1:
                loop = " -> ".join([*path[path.index(target) :], target])
                raise CampaignDefinitionError(
                    f"{root}.steps.{step_id}.{name}", f"steps may not loop: {loop}"
                )
            if target not in state:
                visit(target, [*path, target])
        state[step_id] = 2

    visit(campaign.start, [campaign.start])
    unreachable = sorted(set(campaign.steps) - set(state))
    if unreachable:
        raise CampaignDefinitionError(
            f"{root}.steps.{unreachable[0]}", f"not reachable from start {campaign.start!r}"
        )


def json_path(loc: tuple[Any, ...], root: str) -> str:
    """pydantic's error location as a JSON path (the discriminator tags dropped)."""
    out = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] == "trigger" and part in TRIGGER_TYPES:
            continue
        elif i > 1 and loc[i - 2] == "steps" and part in STEP_TYPES:
            continue
        else:
            out += f".{part}"
    return out


def _problem(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "needs a 'type'"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def parse_campaign(data: Any, root: str = "definition") -> Campaign:
    """Validate JSON-like ``data`` as a campaign definition (fields and step graph).

    Raises
    ------
    CampaignDefinitionError
        Naming the JSON path (under ``root``) of the first problem.
    """
    if isinstance(data, Campaign):
        campaign = data
    else:
        try:
            campaign = Campaign.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise CampaignDefinitionError(
                json_path(tuple(error["loc"]), root), _problem(error)
            ) from None
    _check_graph(campaign, root)
    return campaign


def references(campaign: Campaign, root: str = "definition") -> dict[str, list[tuple[str, str]]]:
    """``{"segments": [(path, id)], "templates": [(path, id)], "models": [(path, ref)]}`` the
    definition names."""
    segments: list[tuple[str, str]] = []
    templates: list[tuple[str, str]] = []
    model_refs: list[tuple[str, str]] = []
    trigger = campaign.trigger
    if isinstance(trigger, SegmentTrigger | ScheduleTrigger) and trigger.segment_id:
        segments.append((f"{root}.trigger.segment_id", trigger.segment_id))
    for step_id, step in campaign.steps.items():
        path = f"{root}.steps.{step_id}"
        if isinstance(step, Send):
            templates.append((f"{path}.template", step.template))
            if step.recommendations is not None and step.recommendations.model is not None:
                model_refs.append((f"{path}.recommendations.model", step.recommendations.model))
        elif isinstance(step, WaitUntil) and step.segment:
            segments.append((f"{path}.segment.segment_id", step.segment.segment_id))
        elif isinstance(step, Branch) and step.condition.segment:
            segments.append(
                (f"{path}.condition.segment.segment_id", step.condition.segment.segment_id)
            )
    return {"segments": segments, "templates": templates, "models": model_refs}


def models(campaigns: Iterable[Campaign]) -> set[str]:
    """The model references (aliases, version numbers) the send steps of ``campaigns`` name."""
    return {ref for c in campaigns for _, ref in references(c)["models"]}


def dump(campaign: Campaign) -> dict[str, Any]:
    """The definition as plain JSON (what the store keeps)."""
    return campaign.model_dump(mode="json", exclude_none=True)
