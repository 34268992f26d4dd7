"""Bulk batches and uploads as clients see them: each answer's model, and its builder.

The models document the answers in /openapi.json and are what the routes serialise: a
builder fills one, :func:`answer` sends the keys it set (an optional key that does not
apply, such as ``hash`` of a batch created without one, is left out, not sent as null).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from querybatch.api.schemas import Loose, RequestMeta
from querybatch.domain.bulk import BulkStatus
from querybatch.engine.bulk_batches import BulkLines, BulkPage, BulkRecord
from querybatch.engine.uploads import Received, Upload


class DownloadLink(BaseModel):
    """A temporary link to a batch's results file."""

    url: str
    validity_ts: float


class LineCounts(BaseModel):
    """How far a batch's lines got (an addition to the seed, in ``GET /batches/{batch}``)."""

    total: int | None = Field(description="lines in the file; null until validation counted them")
    done: int = Field(description="lines whose operation ended (SUCCESS, FAILURE or STOPPED)")
    failed: int = Field(description="lines that did not succeed (FAILURE, STOPPED or INVALID)")


class BulkBatch(Loose):
    """A bulk batch (seed bulk-get-batch)."""

    meta: RequestMeta
    batch: str
    created_ts: float
    updated_ts: float
    status: BulkStatus
    hash: str | None = None
    download: DownloadLink | None = None
    lines: LineCounts | None = None


class BulkBatchList(Loose):
    """A page of the tenant's batches (uuid -> status) and the cursor of the next page."""

    meta: RequestMeta
    batches: dict[str, str]
    cursor: str | None


class StatusChange(BaseModel):
    """The body of ``PATCH /batches/{batch}``: only a cancel can be asked for."""

    model_config = ConfigDict(extra="ignore")
    status: BulkStatus


class UploadUrl(Loose):
    """Where and until when a file can be uploaded."""

    meta: RequestMeta
    url: str
    handler: str
    validity_ts: float


class Uploaded(Loose):
    """What a PUT stored."""

    meta: RequestMeta
    handler: str
    size: int
    sha256: str


class Withdrawn(Loose):
    """An upload that was deleted."""

    meta: RequestMeta
    handler: str
    deleted: bool


def bulk_batch(
    request_id: str,
    record: BulkRecord,
    *,
    with_download: bool = False,
    link: DownloadLink | None = None,
    lines: BulkLines | None = None,
) -> BulkBatch:
    """The batch; ``with_download`` adds ``download``: the ``link``, or null without one;
    ``lines`` adds the line counts."""
    batch = BulkBatch(
        meta=RequestMeta(request_id=request_id),
        batch=record.id,
        created_ts=round(record.created_ts, 3),
        updated_ts=round(record.updated_ts, 3),
        status=record.status,
    )
    if record.hash is not None:
        batch.hash = record.hash
    if with_download:
        batch.download = link
    if lines is not None:
        batch.lines = LineCounts(total=lines.total, done=lines.done, failed=lines.failed)
    return batch


def bulk_batch_list(request_id: str, page: BulkPage, cursor: str | None) -> BulkBatchList:
    """A page of batches and the cursor of the next one."""
    return BulkBatchList(
        meta=RequestMeta(request_id=request_id), batches=page.statuses, cursor=cursor
    )


def upload_url(request_id: str, upload: Upload, url: str) -> UploadUrl:
    """A new upload and its signed URL."""
    return UploadUrl(
        meta=RequestMeta(request_id=request_id),
        url=url,
        handler=upload.handler,
        validity_ts=upload.expires_at,
    )


def uploaded(request_id: str, received: Received) -> Uploaded:
    """What an upload now holds."""
    return Uploaded(
        meta=RequestMeta(request_id=request_id),
        handler=received.handler,
        size=received.size,
        sha256=received.sha256,
    )


def withdrawn(request_id: str, handler: str) -> Withdrawn:
    """An upload that is gone."""
    return Withdrawn(meta=RequestMeta(request_id=request_id), handler=handler, deleted=True)
