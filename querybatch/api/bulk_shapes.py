"""Bulk batches as clients see them: the batch object, the list page, and list cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from querybatch.api.errors import request_id_of
from querybatch.api.schemas import Loose
from querybatch.domain.bulk import BulkStatus
from querybatch.errors import BadRequest
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


def encode_cursor(created_ts: float, batch_id: str) -> str:
    """The opaque cursor of the page after the batch ``batch_id``."""
    return base64.urlsafe_b64encode(f"{created_ts!r}~{batch_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(created_ts, id) a cursor points after; BAD_REQUEST if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, batch_id = raw.partition("~")
        return float(created), batch_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(
            "Invalid value for parameter 'cursor'", "Pass the cursor of the previous answer."
        ) from exc
