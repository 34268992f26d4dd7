"""Bulk file batches (seed bulk-get-batch): create, list, read, cancel, delete, download.

Answers carry the seed's attributes at the top level (``batch``, ``created_ts``, ...) and,
as every answer of this server, ``meta.request_id``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from querybatch.api.answer import json_response, public_base, route_prefix
from querybatch.api.auth import Principal, require
from querybatch.api.bulk_shapes import (
    BulkBatch,
    BulkBatchList,
    StatusChange,
    decode_cursor,
    encode_cursor,
    shape,
)
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.links import SignedLink
from querybatch.api.params import json_body, parse_params
from querybatch.api.schemas import ERROR_RESPONSES, body_doc, json_body_schema
from querybatch.api.services import Services
from querybatch.domain.bulk import (
    CANCEL_STATUSES,
    CANCELLABLE,
    OPERATIONS,
    BulkBatchRequest,
    BulkStatus,
)
from querybatch.domain.dates import LATEST_EPOCH
from querybatch.engine.bulk_io import read_chunks
from querybatch.errors import BadRequest, Conflict, NotFound
from querybatch.store.bulk import BulkRecord

router = APIRouter(tags=["Bulk batches"])

CONFLICTS = ERROR_RESPONSES | {409: ERROR_RESPONSES[400] | {"description": "Wrong status"}}


async def bulk_of(services: Services, principal: Principal, batch: str) -> BulkRecord:
    """The caller's batch, or NOT_FOUND (unknown, malformed, or another tenant's)."""
    record = None
    if _is_uuid(batch):
        record = await services.store.bulk.get( batch, principal.key.account)
    if record is None:
        raise NotFound(f"No batch '{batch[:64]}'")
    return record


@router.post(
    "/batches",
    name="create_batch",
    operation_id="create_batch",
    status_code=201,
    response_model=BulkBatch,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(BulkBatchRequest)),
)
async def create_batch(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("create_batch"))],
) -> Response:
    """Create a batch running ``operation`` once per line of an uploaded JSON Lines file.

    The key's role must allow ``create_batch`` and the operation's own action.
    """
    raw = await json_body(request, services.settings.max_body_bytes)
    params = parse_params(BulkBatchRequest, raw)
    require(principal, OPERATIONS[params.operation])
    record = await services.store.bulk.create(
        account=principal.key.account,
        key_id=principal.key.id,
        operation=params.operation,
        hash=params.hash,
        description=params.description,
        upload_id=params.handler,
        now=time.time(),
    )
    await services.bulk.created(record.id)
    return json_response(shape(record, request), 201)


@router.get(
    "/batches",
    name="get_batches",
    operation_id="get_batches",
    response_model=BulkBatchList,
    responses=ERROR_RESPONSES,
)
async def get_batches(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("get_batches"))],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    # Finite and within 1970..2999, so that nothing later overflows on them.
    ge: Annotated[
        float | None,
        Query(description="created_ts at or after", ge=0, le=LATEST_EPOCH, allow_inf_nan=False),
    ] = None,
    le: Annotated[
        float | None,
        Query(description="created_ts at or before", ge=0, le=LATEST_EPOCH, allow_inf_nan=False),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The tenant's batches and their statuses, ``limit`` at a time.

    Oldest first; newest first when both ``ge`` and ``le`` are given. Pass the answer's
    ``cursor`` (with the same filters) for the next page; it is null on the last page.
    """
    if ge is not None and le is not None and ge > le:
        raise BadRequest("Invalid value for parameter 'ge'", "ge must not be after le.")
    rows = await services.store.bulk.page(
        principal.key.account,
        ge=ge,
        le=le,
        after=decode_cursor(cursor) if cursor else None,
        newest_first=ge is not None and le is not None,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][2], page[-1][0]) if len(rows) > limit else None
    body = {
        "meta": {"request_id": request_id_of(request)},
        "batches": {batch_id: status for batch_id, status, _ in page},
        "cursor": next_cursor,
    }
    return json_response(body)


@router.get(
    "/batches/{batch}",
    name="get_batch",
    operation_id="get_batch",
    response_model=BulkBatch,
    responses=ERROR_RESPONSES,
)
async def get_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("get_batch"))],
    download: Annotated[bool, Query()] = False,
) -> Response:
    """The batch; with ``download=true`` also a temporary link to its results file.

    ``download`` is null while the batch has no results file yet. The link reads rows, so
    asking for it needs ``get_data`` too.
    """
    if download:
        require(principal, "get_data")
    record = await bulk_of(services, principal, batch)
    body = shape(record, request)
    if download:
        body["download"] = None
        if record.result_file_id is not None:
            expires = round(time.time() + services.settings.download_ttl, 3)
            base = public_base(request, services) + route_prefix(request)
            url = services.links.url(base, "GET", f"/batches/{record.id}/results", expires)
            body["download"] = {"url": url, "validity_ts": expires}
    return json_response(body)


@router.patch(
    "/batches/{batch}",
    name="update_batch",
    operation_id="update_batch",
    response_model=BulkBatch,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(StatusChange)),
)
async def update_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("update_batch"))],
) -> Response:
    """Cancel the batch (``{"status": "cancel"}``); finished operations keep their results.

    Cancelling a batch already cancelled is harmless; a finished one, a conflict.
    """
    raw = await json_body(request, services.settings.max_body_bytes)
    change = parse_params(StatusChange, raw)
    if change.status is not BulkStatus.CANCEL:
        raise BadRequest("Invalid value for parameter 'status'", "The only change is 'cancel'.")
    record = await bulk_of(services, principal, batch)
    while record.status in CANCELLABLE:
        moved = await services.store.bulk.move( record.id, record.status, BulkStatus.CANCEL, time.time()
        )
        record = await bulk_of(services, principal, batch)
        if moved:
            services.bulk.poke(record.id)
    if record.status not in CANCEL_STATUSES:
        raise Conflict(
            f"A batch in status '{record.status.value}' cannot be cancelled",
            "Only a batch that has not started writing its results can be cancelled.",
        )
    return json_response(shape(record, request))


@router.delete(
    "/batches/{batch}",
    name="delete_batch",
    operation_id="delete_batch",
    response_model=BulkBatch,
    responses=ERROR_RESPONSES,
)
async def delete_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("delete_batch"))],
) -> Response:
    """Delete the batch: its operations stop, and it and its files are gone (404 after)."""
    record = await bulk_of(services, principal, batch)
    while record.status is not BulkStatus.DELETING:
        now = time.time()
        if await services.store.bulk.move( record.id, record.status, BulkStatus.DELETING, now
        ):
            record = replace(record, status=BulkStatus.DELETING, updated_ts=round(now, 3))
            break
        record = await bulk_of(services, principal, batch)
    body = shape(record, request)
    await services.bulk.delete(record)
    return json_response(body)


@router.get(
    "/batches/{batch}/results",
    name="download_batch_results",
    operation_id="download_batch_results",
    responses=ERROR_RESPONSES
    | {
        200: {"description": "One JSON line per operation", "content": {"application/x-ndjson": {}}}
    },
)
async def download_batch_results(
    batch: str,
    services: ServicesDep,
    _link: Annotated[float, Depends(SignedLink())],
) -> Response:
    """The batch's results file (reached by the signed link of ``GET /batches/{batch}``)."""
    record = await services.store.bulk.get( batch)
    if record is None or record.result_file_id is None:
        raise NotFound(f"Batch '{batch[:64]}' has no results file")
    headers = {"Content-Disposition": f'attachment; filename="{record.id}.jsonl"'}
    return StreamingResponse(
        read_chunks(services.store, record.result_file_id),
        media_type="application/x-ndjson",
        headers=headers,
    )


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
