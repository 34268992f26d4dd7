"""Bulk batches as clients see them: the batch object and the list page."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from querybatch.api.errors import request_id_of
from querybatch.api.schemas import Loose
from querybatch.domain.bulk import BulkStatus
from querybatch.store.bulk import BulkRecord


class BulkBatch(Loose):
    """A bulk batch (seed bulk-get-batch)."""

    batch: str
    created_ts: float
    updated_ts: float
    status: BulkStatus
    hash: str | None = None
    download: dict[str, Any] | None = None


class BulkBatchList(Loose):
    """A page of the tenant's batches (uuid -> status) and the cursor of the next page."""

    batches: dict[str, str]
    cursor: str | None


class StatusChange(BaseModel):
    """The body of ``PATCH /batches/{batch}``: only a cancel can be asked for."""

    model_config = ConfigDict(extra="ignore")
    status: BulkStatus


def shape(record: BulkRecord, request: Request) -> dict[str, Any]:
    """The batch as clients see it."""
    body: dict[str, Any] = {
        "meta": {"request_id": request_id_of(request)},
        "batch": record.id,
        "created_ts": round(record.created_ts, 3),
        "updated_ts": round(record.updated_ts, 3),
        "status": record.status.value,
    }
    if record.hash is not None:
        body["hash"] = record.hash
    return body
