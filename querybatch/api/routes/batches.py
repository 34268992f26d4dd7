"""Query batches (seeds supermetrics-create/get/cancel-batch): create, read, list, cancel;
and the tenant's recent activity over all of them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from querybatch.api.activity_shapes import ActivityResponse, activity_response
from querybatch.api.answer import model_response, public_base, route_prefix
from querybatch.api.auth import Principal, require
from querybatch.api.batch_shapes import progress, query_batch
from querybatch.api.cursor import QUERY_BATCH_CURSORS
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.download import download_etag, download_stream
from querybatch.api.errors import request_id_of
from querybatch.api.failure_shapes import FailuresMeta, FailuresResponse, failure_groups
from querybatch.api.formats import MEDIA_TYPES
from querybatch.api.params import json_body
from querybatch.api.poll import PLACEHOLDER, PollAnswer
from querybatch.api.ranges import generated_response
from querybatch.api.routing import action_route
from querybatch.api.schemas import (
    ERROR_RESPONSES,
    BatchListMeta,
    BatchListResponse,
    BatchStatusMeta,
    BatchStatusResponse,
    OffsetPage,
    QueryBatchResponse,
    RequestMeta,
    body_doc,
    query_batch_schema,
)
from querybatch.api.services import Services
from querybatch.api.sub_query_params import sub_query_filter
from querybatch.domain.dates import epoch_seconds
from querybatch.domain.poll_hint import retry_after
from querybatch.domain.status import BatchStatus
from querybatch.domain.sub_query_filter import SubQueryFilter
from querybatch.engine.query_batches import MAX_MINUTES, BatchRecord
from querybatch.errors import BadRequest

router = APIRouter(tags=["Query batches"])

BatchId = Annotated[str, "a batch id, qrb_ and 12 hex digits"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """An integer parameter's bounds and default (shared with the poll lane)."""

    low: int
    high: int
    default: int


PAGE_OFFSET = Bounds(0, 10_000_000, 0)
PAGE_LIMIT = Bounds(1, 1000, 100)


def base_of(request: Request, services: Services) -> str:
    """The absolute URL prefix links in answers start with (same API prefix as the request)."""
    return public_base(request, services) + route_prefix(request)


def batch_response(
    request: Request, services: Services, batch: BatchRecord, status: int = 200
) -> Response:
    """The answer holding one query batch, built once per state of the batch (a poll
    answer), with when to ask again while it has not stopped."""
    base = base_of(request, services)

    def build() -> PollAnswer:
        data = query_batch(batch, base)
        answer = QueryBatchResponse(meta=RequestMeta(request_id=PLACEHOLDER), data=data)
        return PollAnswer.of(answer, batch_retry_after(batch))

    key = ("batch", batch.account, batch.id, base)
    return services.answers.answer(key, batch, None, build).response(request, status)


def batch_retry_after(batch: BatchRecord) -> int | None:
    """Seconds to wait before polling ``batch`` again; None once it stopped."""
    if batch.status is BatchStatus.STOPPED:
        return None
    return retry_after(batch.start_time, batch.schedule_time, time.time())


async def batch_answer(
    request: Request, services: Services, principal: Principal, batch_id: str
) -> Response:
    """``GET /query/batch/{batch_id}`` (also answered by :mod:`querybatch.api.poll_lane`)."""
    batch = await services.query_batches.get(principal.caller, batch_id)
    return batch_response(request, services, batch)


async def batch_status_answer(
    request: Request,
    services: Services,
    principal: Principal,
    batch_id: str,
    offset: int,
    limit: int,
    keep: SubQueryFilter | None = None,
) -> Response:
    """``GET /query/batch/{batch_id}/status`` (also answered by the poll lane, unfiltered)."""
    batches = services.query_batches
    if keep is None or keep.is_empty:
        page = await batches.status_page(principal.caller, batch_id, offset, limit)
    else:
        page = await batches.filtered_status_page(principal.caller, batch_id, keep, offset, limit)
    batch, queries = page.batch, page.queries
    total = batch.query_amount if page.matched is None else page.matched
    base = base_of(request, services)
    meta = BatchStatusMeta(
        request_id=PLACEHOLDER,
        batch_id=batch.id,
        status_code=batch.status.value,
        progress=progress(batch.counts),
        paginate=OffsetPage(offset=offset, limit=limit, total=total),
    )
    data = services.items.page(queries, base)
    return PollAnswer.enveloped(meta, data, batch_retry_after(batch)).response(request)


@action_route(
    router,
    "POST",
    "/query/batch",
    "create_query_batch",
    status_code=201,
    response_model=QueryBatchResponse,
    responses=ERROR_RESPONSES
    | {409: ERROR_RESPONSES[400] | {"description": "Idempotency conflict"}},
    openapi_extra=body_doc(query_batch_schema()),
)
async def create_query_batch(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Create a batch of queries; it is split, stored and scheduled before this answers.

    The key's role must allow ``create_query_batch`` and ``get_data``: the batch runs data
    queries whose rows its key can then read.
    """
    require(principal, "get_data")
    body = await json_body(request, services.settings.max_body_bytes)
    batch, created = await services.query_batches.create(
        principal.caller, body, idempotency_key=idempotency_key
    )
    return batch_response(request, services, batch, 201 if created else 200)


@action_route(
    router,
    "GET",
    "/query/batch",
    "list_query_batches",
    response_model=BatchListResponse,
    responses=ERROR_RESPONSES,
)
async def list_query_batches(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    status: Annotated[Literal["QUEUED", "RUNNING", "STOPPED"] | None, Query()] = None,
    created_after: Annotated[datetime | None, Query()] = None,
    created_before: Annotated[datetime | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The tenant's batches, newest first, ``limit`` per page; ``meta.next_cursor`` pages on."""
    after = QUERY_BATCH_CURSORS.decode(cursor) if cursor else None
    listed = await services.query_batches.list_batches(
        principal.caller,
        status=BatchStatus(status) if status else None,
        created_ge=_epoch(created_after, "created_after"),
        created_le=_epoch(created_before, "created_before"),
        after=after,
        limit=limit,
    )
    page, more = listed.batches, listed.more
    next_cursor = (
        QUERY_BATCH_CURSORS.encode(page[-1].created_at, page[-1].id) if more and page else None
    )
    base = base_of(request, services)
    meta = BatchListMeta(request_id=request_id_of(request), next_cursor=next_cursor, limit=limit)
    data = [query_batch(b, base) for b in page]
    return model_response(BatchListResponse(meta=meta, data=data))


def _epoch(value: datetime | None, name: str) -> float | None:
    """A list filter's time as epoch seconds; years outside 1970..2999 are a BAD_REQUEST."""
    if value is None:
        return None
    try:
        return epoch_seconds(value, name)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"Invalid value for parameter '{name}'", str(exc)) from exc


@action_route(
    router,
    "GET",
    "/query/batch/{batch_id}",
    "get_query_batch",
    response_model=QueryBatchResponse,
    responses=ERROR_RESPONSES,
)
async def get_query_batch(
    batch_id: BatchId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The QueryBatch: status, times, settings, size and the link to its per-query status."""
    return await batch_answer(request, services, principal, batch_id)


@action_route(
    router,
    "GET",
    "/query/batch/{batch_id}/status",
    "get_query_batch_status",
    response_model=BatchStatusResponse,
    responses=ERROR_RESPONSES,
)
async def get_query_batch_status(
    batch_id: BatchId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=PAGE_OFFSET.low, le=PAGE_OFFSET.high)] = PAGE_OFFSET.default,
    limit: Annotated[int, Query(ge=PAGE_LIMIT.low, le=PAGE_LIMIT.high)] = PAGE_LIMIT.default,
    status: Annotated[list[str] | None, Query()] = None,
    account: Annotated[str | None, Query()] = None,
    date: Annotated[str | None, Query()] = None,
) -> Response:
    """Each sub-query's status, split, error and result link, ``limit`` at a time.

    Optional filters keep only the sub-queries of the given ``status`` (repeated, or
    comma-separated), with an account whose id holds ``account`` (case-insensitive, up to
    64 characters), whose date range holds ``date`` (YYYY-MM-DD). ``offset`` and ``limit``
    then page through the sub-queries kept, and ``meta.paginate.total`` counts them.
    """
    keep = sub_query_filter(status or [], account, date)
    return await batch_status_answer(request, services, principal, batch_id, offset, limit, keep)


@action_route(
    router,
    "GET",
    "/query/batch/{batch_id}/failures",
    "get_query_batch_status",
    name="get_query_batch_failures",
    response_model=FailuresResponse,
    responses=ERROR_RESPONSES,
)
async def get_query_batch_failures(
    batch_id: BatchId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The batch's failed sub-queries grouped by error code and message, largest first.

    Each group names its 20 most frequent accounts and the first and last date it covers;
    at most 100 groups are sent (``meta.groups_truncated`` says when more exist).
    """
    batch, summary = await services.query_batches.failures(principal.caller, batch_id)
    meta = FailuresMeta(
        request_id=request_id_of(request),
        batch_id=batch.id,
        status_code=batch.status.value,
        failures=summary.failures,
        groups_truncated=summary.truncated,
    )
    return model_response(FailuresResponse(meta=meta, data=failure_groups(summary)))


@action_route(
    router,
    "DELETE",
    "/query/batch/{batch_id}",
    "cancel_query_batch",
    response_model=QueryBatchResponse,
    responses=ERROR_RESPONSES,
)
async def cancel_query_batch(
    batch_id: BatchId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Cancel: nothing new starts, running queries are let go, collected results stay readable."""
    batch = await services.query_batches.cancel(principal.caller, batch_id)
    return batch_response(request, services, batch)


@action_route(
    router,
    "GET",
    "/query/batch/{batch_id}/download",
    "download_query_batch",
    responses=ERROR_RESPONSES
    | {
        200: {
            "description": "Every result row of the batch",
            "content": {"application/x-ndjson": {}},
        },
        206: {"description": "The byte range asked for (a stopped batch)"},
        416: {"description": "The byte range starts past the end of the file"},
    },
)
async def download_query_batch(
    batch_id: BatchId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    format: Annotated[Literal["ndjson", "csv", "parquet"], Query()] = "ndjson",
) -> Response:
    """Every collected row of the batch as one file (so far, if it still runs).

    Rows are data: the key's role must allow ``get_data`` too. Once the batch has stopped,
    a single ``Range`` is served (206) so that an interrupted download resumes.
    """
    require(principal, "get_data")
    download = await services.query_batches.download(
        principal.caller, batch_id, lines=format == "ndjson"
    )
    escape = services.settings.csv_escape_formulas
    body = download_stream(format, download.columns, download.blocks, escape_formulas=escape)
    extension = {"ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}[format]
    headers = {"Content-Disposition": f'attachment; filename="{download.batch.id}.{extension}"'}
    etag = download_etag(download, format, escape_formulas=escape)
    return await generated_response(
        request, etag, body, MEDIA_TYPES[format], headers, services.settings.range_spool_bytes
    )


@action_route(
    router,
    "GET",
    "/query/activity",
    "get_query_batch_status",
    name="get_query_activity",
    response_model=ActivityResponse,
    responses=ERROR_RESPONSES,
)
async def get_query_activity(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES)] = 60,
) -> Response:
    """The tenant's sub-queries finished per minute (success, failure, stopped) over the
    last ``minutes`` (1..1440, the current minute included), and the failures of that window
    grouped by error code and message (the 100 most frequent), with how many batches each
    hit. Statuses, not rows: the role needs ``get_query_batch_status``."""
    activity = await services.query_batches.activity(principal.caller, minutes)
    return model_response(activity_response(request_id_of(request), minutes, activity))
