"""Campaign pages: the list with states and sends, and one campaign with its steps as a flow,
the A/B report of ``GET /v1/campaigns/{id}/report`` (table and a chart over time), the recent
sends with their items, and activate / pause through the API's campaign service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from recsys.campaigns import definitions as d
from recsys.campaigns.recommend import items_by_id
from recsys.campaigns.report import campaign_report
from recsys.store import Role
from recsys.store.db import read_session
from serving.console.render import base_url, page
from serving.console.session import Viewer, ViewerDep, WriterDep, state_of
from serving.routes.campaigns import _service

router = APIRouter()
RECENT_SENDS = 20
ACTIONS = {"active": ("Activate", ("draft", "paused")), "paused": ("Pause", ("active",))}


@router.get("/campaigns")
async def campaigns(request: Request, viewer: ViewerDep):
    store = state_of(request).store

    def load() -> tuple[list[dict], dict[str, int]]:
        return store.campaigns.all(), store.campaigns.sent_counts()

    rows, sent = await run_in_threadpool(load)
    for row in rows:
        row["trigger"] = (row["definition"].get("trigger") or {}).get("type", "-")
    return page(request, "campaigns.html", viewer, "campaigns", campaigns=rows, sent=sent)


def _wait_text(step: d.Wait) -> str:
    parts = [(step.days, "d"), (step.hours, "h"), (step.minutes, "min"), (step.seconds, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"


def _label(step: Any) -> str:
    """One line saying what a step does."""
    if isinstance(step, d.Send):
        recs = step.recommendations
        extra = f", {recs.k} {recs.kind.replace('_', '-')} recommendations" if recs else ""
        return f"send {step.channel} with template {step.template}{extra}"
    if isinstance(step, d.Wait):
        return f"wait {_wait_text(step)}"
    if isinstance(step, d.WaitUntil):
        what = step.event.event_type if step.event else f"segment {step.segment.segment_id}"
        return f"wait until {what} (at most {step.timeout_seconds} s)"
    if isinstance(step, d.Branch):
        c = step.condition
        if c.segment is not None:
            return f"if {'in' if c.segment.member else 'not in'} segment {c.segment.segment_id}"
        return f"if {c.field} {c.op} {'' if c.value is None else c.value}".rstrip()
    if isinstance(step, d.Split):
        return "A/B split"
    return "exit"


def _ways_out(step: Any) -> list[tuple[str, str | None]]:
    """The labelled branches of a step that forks (none for a linear step)."""
    if isinstance(step, d.Split):
        total = sum(a.weight for a in step.arms)
        return [(f"arm {a.name} ({a.weight / total:.0%}{', holdout' if a.holdout else ''})",
                 a.next) for a in step.arms]  # fmt: skip
    if isinstance(step, d.WaitUntil):
        return [("on match", step.on_match), ("on timeout", step.on_timeout)]
    if isinstance(step, d.Branch):
        return [("if true", step.if_true), ("if false", step.if_false)]
    return []


def flow(campaign: d.Campaign) -> list[dict[str, Any]]:
    """The steps from ``start`` as nested chains: a linear step continues the chain, a forking
    one ends it with one sub-chain per way out. A step reached twice is shown once and then
    referred to (the graph has no loops, but branches may meet)."""
    shown: set[str] = set()

    def chain(step_id: str | None) -> list[dict[str, Any]]:
        nodes = []
        while step_id is not None:
            if step_id in shown:
                nodes.append({"id": step_id, "goto": True})
                break
            shown.add(step_id)
            step = campaign.steps[step_id]
            forks = _ways_out(step)
            node = {"id": step_id, "type": step.type, "label": _label(step), "branches": []}
            nodes.append(node)
            if forks:
                node["branches"] = [{"label": label, "steps": chain(target)}
                                    for label, target in forks]  # fmt: skip
                break
            step_id = getattr(step, "next", None)
        return nodes

    return chain(campaign.start)


def _chart(report: dict) -> dict:
    """Chart.js spec: each arm's conversion rate to date (%) per day, from the report."""
    names = [a["arm"] for a in report["arms"]]
    days = report["days"]
    datasets = [
        {"label": f"{name}{' (holdout)' if arm['holdout'] else ''}",
         "data": [None if day["arms"][name]["conversion_rate_to_date"] is None
                  else round(100 * day["arms"][name]["conversion_rate_to_date"], 2)
                  for day in days]}
        for name, arm in zip(names, report["arms"], strict=True)
    ]  # fmt: skip
    y_title = {"display": True, "text": "conversion rate to date (%)"}
    return {
        "type": "line",
        "data": {"labels": [day["date"] for day in days], "datasets": datasets},
        "options": {"spanGaps": True, "scales": {"y": {"beginAtZero": True, "title": y_title}}},
    }


def _campaign(store, campaign_id: str) -> dict[str, Any]:
    row = store.campaigns.get(campaign_id)
    report = campaign_report(store.engine, campaign_id)
    sends = store.campaigns.messages(campaign_id, limit=RECENT_SENDS, newest_first=True)
    with read_session(store.engine) as s:  # one catalogue query for every send's items
        items = items_by_id(s, {i for m in sends for i in m["items"]})
    return {"campaign": row, "report": report, "sends": sends, "items": items}


@router.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: str, viewer: ViewerDep):
    known = await run_in_threadpool(_campaign, state_of(request).store, campaign_id)
    parsed = d.parse_campaign(known["campaign"]["definition"])
    status = known["campaign"]["status"]
    can_write = viewer.can(Role.MARKETER)
    actions = [
        (target, label) for target, (label, sources) in ACTIONS.items() if status in sources
    ] if can_write else []  # fmt: skip
    return page(
        request, "campaign.html", viewer, "campaigns",
        definition=parsed, flow=flow(parsed), chart=_chart(known["report"]), actions=actions,
        can_write=can_write, **known,
    )  # fmt: skip


async def _marketer(viewer: WriterDep) -> Viewer:
    """The role is checked before the form is: a read key is refused whatever it sends."""
    viewer.require(Role.MARKETER)
    return viewer


@router.post("/campaigns/{campaign_id}/status")
async def set_status(
    request: Request,
    campaign_id: str,
    viewer: Annotated[Viewer, Depends(_marketer)],
    status: Annotated[str, Form(max_length=16)],
):
    """Activate or pause: the API's campaign service (its transitions and checks)."""
    state = state_of(request)
    await run_in_threadpool(_service(state).set_status, campaign_id, status)
    return RedirectResponse(f"{base_url(request)}/campaigns/{campaign_id}", 303)
