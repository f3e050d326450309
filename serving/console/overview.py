"""The overview page: the served model, live traffic from the service's own metrics, campaigns."""

from __future__ import annotations

from datetime import UTC, datetime, time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from serving.console.render import page
from serving.console.session import ViewerDep, state_of

router = APIRouter()


def _store_figures(store) -> dict:
    midnight = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    return {
        "active_campaigns": store.campaigns.all("active"),
        "sent_today": store.campaigns.sent_count(midnight),
    }


@router.get("/")
async def overview(request: Request, viewer: ViewerDep):
    state = state_of(request)
    model = await state.model.info()
    figures = await run_in_threadpool(_store_figures, state.store)
    return page(
        request, "overview.html", viewer, "overview",
        model=model, traffic=state.metrics.recent.summary(), **figures,
    )  # fmt: skip
