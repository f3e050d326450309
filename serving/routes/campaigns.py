"""Campaigns and templates: CRUD, states, API triggers, the A/B report, the outbox, dead letters,
template preview, and the open unsubscribe link.

Reads need a read (or marketer) key, writes a marketer key (admin always). Definition problems are
answered 422 with the JSON path of the offending part (``definition.steps.mail.template``);
unknown segment, template or model references too (a ``recommendations.model`` alias or version
the MLflow registry does not hold; not checked while the registry cannot be reached).
``GET /v1/unsubscribe`` is open: the token is the credential.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from recsys.campaigns.definitions import CampaignDefinitionError, dump, json_path
from recsys.campaigns.definitions import _problem as problem_of
from recsys.campaigns.guards import read_unsubscribe_token
from recsys.campaigns.models import registry_check
from recsys.campaigns.report import campaign_report
from recsys.campaigns.service import CampaignService, preview_context
from recsys.campaigns.settings import campaign_settings
from recsys.campaigns.templates import TemplateProblem
from recsys.recommend import RecommendRequest
from serving.deps import MarketerKey, ReadKey, StateDep
from serving.schemas import V1_ERRORS, problem
from serving.schemas_campaigns import (
    CampaignIn,
    CampaignList,
    CampaignOut,
    CampaignUpdate,
    DeadLetterOut,
    MessageList,
    PreviewIn,
    PreviewOut,
    StatusIn,
    TemplateIn,
    TemplateList,
    TemplateOut,
    TriggerIn,
    TriggerOut,
    UnsubscribeOut,
)


def _field(loc: tuple) -> str:
    parts = tuple(loc[1:]) if loc and loc[0] in ("body", "query", "path") else tuple(loc)
    path = json_path(parts[1:], str(parts[0])) if parts else ""
    return path if path.strip(".") else "body"  # an unnamed key ("") at the top


def _invalid(details: list[dict]) -> JSONResponse:
    return JSONResponse({"detail": details}, status_code=422)


class CampaignRoute(APIRoute):
    """Validation errors (pydantic's and the service's) reported by JSON path."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _invalid(
                    [{"field": _field(tuple(e.get("loc", ()))), "problem": problem_of(e)}
                     for e in exc.errors()]
                )  # fmt: skip
            except CampaignDefinitionError as exc:
                return _invalid([{"field": exc.path, "problem": exc.problem}])
            except TemplateProblem as exc:
                part, _, what = str(exc).partition(": ")
                return _invalid([{"field": part, "problem": what}])

        return route


router = APIRouter(prefix="/v1", tags=["campaigns"], responses=V1_ERRORS, route_class=CampaignRoute)
open_router = APIRouter(tags=["campaigns"])  # no key: included below, after the keyed routes
NOT_FOUND = {404: problem("No such campaign")}
CONFLICT = {409: problem("Not allowed in the campaign's current state")}


def _service(state) -> CampaignService:
    """The service, checking model references (A/B arms) against the served model's registry."""
    settings = state.settings
    return CampaignService(
        state.store, registry_check(settings.mlflow_tracking_uri, settings.model_uri)
    )


@router.get("/campaigns", response_model=CampaignList, summary="List campaigns")
def list_campaigns(state: StateDep, key: ReadKey, status: str | None = None) -> CampaignList:
    return CampaignList(campaigns=state.store.campaigns.all(status))


@router.post("/campaigns", status_code=201, response_model=CampaignOut, summary="Create a campaign",
             responses={409: problem("The id is taken")})  # fmt: skip
def create_campaign(body: CampaignIn, state: StateDep, key: MarketerKey) -> CampaignOut:
    row = _service(state).create(
        dump(body.definition), body.id, actor=key.actor, status=body.status
    )
    return CampaignOut(**row)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, responses=NOT_FOUND)
def get_campaign(campaign_id: str, state: StateDep, key: ReadKey) -> CampaignOut:
    return CampaignOut(**state.store.campaigns.get(campaign_id))


@router.put(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Replace a draft or paused definition",
)
def update_campaign(campaign_id: str, body: CampaignUpdate, state: StateDep,
                    key: MarketerKey) -> CampaignOut:  # fmt: skip
    return CampaignOut(**_service(state).update(campaign_id, dump(body.definition)))


@router.post(
    "/campaigns/{campaign_id}/status",
    response_model=CampaignOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Activate, pause or archive (draft -> active <-> paused -> archived)",
)
def set_status(campaign_id: str, body: StatusIn, state: StateDep, key: MarketerKey) -> CampaignOut:
    return CampaignOut(**_service(state).set_status(campaign_id, body.status))


@router.delete("/campaigns/{campaign_id}", response_model=CampaignOut, responses=NOT_FOUND,
               summary="Archive a campaign (its enrolments stop)")  # fmt: skip
def archive_campaign(campaign_id: str, state: StateDep, key: MarketerKey) -> CampaignOut:
    return CampaignOut(**_service(state).set_status(campaign_id, "archived"))


@router.post(
    "/campaigns/{campaign_id}/trigger",
    response_model=TriggerOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Enrol customers (API trigger)",
)
def trigger_campaign(campaign_id: str, body: TriggerIn, state: StateDep,
                     key: MarketerKey) -> TriggerOut:  # fmt: skip
    return TriggerOut(**_service(state).trigger(campaign_id, body.user_ids, body.data))


@router.get("/campaigns/{campaign_id}/report", responses=NOT_FOUND,
            summary="A/B report: per arm and per day, uplift over the holdout")  # fmt: skip
def report(campaign_id: str, state: StateDep, key: ReadKey) -> dict:
    return campaign_report(state.store.engine, campaign_id)


@router.get("/campaigns/{campaign_id}/messages", response_model=MessageList, responses=NOT_FOUND,
            summary="Messages of a campaign (the outbox), oldest first")  # fmt: skip
def messages(campaign_id: str, state: StateDep, key: ReadKey, after: int = 0,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> MessageList:  # fmt: skip
    state.store.campaigns.get(campaign_id)
    rows = state.store.campaigns.messages(campaign_id, after=after, limit=limit)
    return MessageList(
        messages=rows, next_after=rows[-1]["send_id"] if len(rows) == limit else None
    )


@router.get(
    "/campaigns/{campaign_id}/dead_letters",
    response_model=list[DeadLetterOut],
    responses=NOT_FOUND,
    summary="Webhook messages given up after the last retry",
)
def dead_letters(campaign_id: str, state: StateDep, key: ReadKey) -> list[DeadLetterOut]:
    state.store.campaigns.get(campaign_id)
    return [DeadLetterOut(**r) for r in state.store.campaigns.dead_letters(campaign_id)]


@router.get("/templates", response_model=TemplateList, summary="List templates")
def list_templates(state: StateDep, key: ReadKey) -> TemplateList:
    return TemplateList(templates=list(state.store.campaigns.templates().values()))


@router.put("/templates/{template_id}", response_model=TemplateOut,
            summary="Create or replace a template (checked by rendering it)")  # fmt: skip
def put_template(template_id: str, body: TemplateIn, state: StateDep,
                 key: MarketerKey) -> TemplateOut:  # fmt: skip
    return TemplateOut(**_service(state).put_template({"id": template_id, **body.model_dump()}))


@router.get("/templates/{template_id}", response_model=TemplateOut,
            responses={404: problem("No such template")})  # fmt: skip
def get_template(template_id: str, state: StateDep, key: ReadKey) -> TemplateOut:
    return TemplateOut(**state.store.campaigns.template(template_id))


@router.post(
    "/templates/preview",
    response_model=PreviewOut,
    responses={404: problem("No such template")},
    summary="Render a template for a customer, with recommendations chosen now",
)
async def preview(body: PreviewIn, state: StateDep, key: ReadKey) -> PreviewOut:
    if (body.template_id is None) == (body.template is None):
        raise CampaignDefinitionError("body", "give either template_id or template")
    answer = await state.model.answer(RecommendRequest(body.user_id, body.k))
    ids = [row["item_id"] for row in answer["items"]]
    template = body.template_id or {"id": "preview", **body.template.model_dump()}
    settings = campaign_settings()

    def render() -> dict:
        context = preview_context(state.store, body.user_id, ids, settings)
        return _service(state).preview(template, context)

    parts = await run_in_threadpool(render)
    return PreviewOut(**parts, items=ids)


@open_router.get(
    "/unsubscribe",
    response_model=UnsubscribeOut,
    summary="Record an opt-out from an unsubscribe link (open: the token is signed)",
)
def unsubscribe(token: Annotated[str, Query(max_length=2000)], state: StateDep) -> UnsubscribeOut:
    user_id, channel = read_unsubscribe_token(campaign_settings().secret(), token)
    customer = state.store.customers.get(user_id)
    if customer is None:  # erased since: nothing to record
        return UnsubscribeOut(user_id=user_id, channel=channel, unsubscribed=False)
    consents = {**(customer.get("consents") or {}), channel: False}
    state.store.customers.put(user_id, {"consents": consents}, source="unsubscribe")
    return UnsubscribeOut(user_id=user_id, channel=channel, unsubscribed=True)


router.include_router(open_router)
