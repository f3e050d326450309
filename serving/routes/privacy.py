"""Data rights: a customer's export, the erasure receipts with their pending scrubs, and the
service's periodic privacy job (retention + scrub retries) started with the app."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from starlette.concurrency import run_in_threadpool

from recsys.privacy import PrivacyJob, privacy_settings
from recsys.recommend.requests import RecentlyShownRequest
from recsys.store import read_session
from recsys.store.erasure import export_user
from recsys.store.privacy import PENDING, current_consents, list_erasures
from recsys.store.tables import utcnow
from serving.deps import AdminKey, StateDep
from serving.schemas import V1_ERRORS, IdPath
from serving.schemas_privacy import ErasureList, ExportOut, RetryOut

router = APIRouter(prefix="/v1", tags=["privacy"], responses=V1_ERRORS)


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Run the privacy job (``RECSYS_PRIVACY_JOB_SECONDS``) while the app serves."""
    job = PrivacyJob(app.state.recsys.scrubber, privacy_settings())
    job.start()
    try:
        yield
    finally:
        await run_in_threadpool(job.stop)


@router.get(
    "/users/{user_id}/export",
    response_model=ExportOut,
    summary="Everything stored about a customer (right of access)",
)
async def export(user_id: IdPath, state: StateDep, key: AdminKey) -> ExportOut:
    """One JSON document per customer, built table by table from the same registry that
    erasure uses (attributes and profile, consent history and current consents, events,
    segment memberships, campaign enrolments, sends and messages, audit entries about them),
    plus the recommendations last shown to them (the model's in-memory suppression window).
    An unknown or erased customer gets empty tables."""
    tables, consents = await run_in_threadpool(_stored, state, user_id, key.actor)
    shown = await state.model.answer(RecentlyShownRequest(user_id))
    return ExportOut(
        user_id=user_id,
        exported_at=utcnow().isoformat(),
        consents=consents,
        tables=tables,
        recently_recommended=shown,
    )


def _stored(state, user_id: str, actor: str) -> tuple[dict, dict]:
    tables = export_user(state.store.engine, user_id)
    with read_session(state.store.engine) as session:
        consents = current_consents(session, user_id)
    state.store.audit.record(actor, "user.export", f"user:{user_id}", {})
    return tables, consents


@router.get("/admin/erasures", response_model=ErasureList, summary="Erasure receipts")
def erasures(
    state: StateDep, key: AdminKey, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> ErasureList:
    """The newest erasures (by user hash: ids are not kept), each with the derived data it
    reached (registry versions, bundle caches, the SQLite log) and what is still pending."""
    with read_session(state.store.engine) as session:
        rows = list_erasures(session, limit)
    pending = sum(s["status"] == PENDING for r in rows for s in r["scrubs"])
    return ErasureList(erasures=rows, pending=pending)


@router.post("/admin/erasures/retry", response_model=RetryOut, summary="Retry pending scrubs")
def retry(state: StateDep, key: AdminKey) -> RetryOut:
    """Run every due pending scrub now instead of waiting for the privacy job."""
    return RetryOut(**state.scrubber.retry_due())
