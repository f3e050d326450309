"""Request and response bodies of the privacy routes (erasure receipts, export)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from serving.schemas import ErasureOut


class ScrubOut(BaseModel):
    """One target holding derived data (registry versions, a bundle cache, the SQLite log)."""

    target: str
    status: str = Field(description="done, or pending (retried with back-off until done)")
    attempts: int
    last_error: str | None
    artifacts: list[dict[str, Any]] = Field(description="Each artifact checked or rewritten.")
    created_at: str
    next_attempt_at: str | None
    done_at: str | None


class ErasureReceiptOut(ErasureOut):
    """The receipt of ``DELETE /v1/users/{user_id}``: rows deleted per table, and derived data."""

    scrubs: list[ScrubOut]
    pending: int = Field(description="Scrubs not done yet (see GET /v1/admin/erasures).")


class ErasureListItem(BaseModel):
    receipt_id: str
    user_hash: str = Field(description="SHA-256 of the user id; the id itself is not kept.")
    erased_at: str
    deleted: dict[str, int]
    scrubs: list[ScrubOut]
    pending: int


class ErasureList(BaseModel):
    erasures: list[ErasureListItem]
    pending: int = Field(description="Pending scrubs over the receipts listed.")


class ExportOut(BaseModel):
    """Everything stored about one customer, per table of the erasure registry."""

    user_id: str
    exported_at: str
    consents: dict[str, bool] = Field(description="Current consent per channel (from history).")
    tables: dict[str, Any]
    recently_recommended: Any = Field(
        default=None, description="Items recommended to the customer recently, when known."
    )


class RetryOut(BaseModel):
    done: int
    pending: int
