"""Bulk file batches (seed bulk-get-batch): create, list, read, cancel, delete, download.

Answers carry the seed's attributes at the top level (``batch``, ``created_ts``, ...) and,
as every answer of this server, ``meta.request_id``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, public_base, route_prefix
from querybatch.api.auth import require
from querybatch.api.bulk_shapes import (
    BulkBatch,
    BulkBatchList,
    DownloadLink,
    StatusChange,
    bulk_batch,
    bulk_batch_list,
)
from querybatch.api.cursor import BULK_BATCH_CURSORS
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.links import SignedLink
from querybatch.api.params import json_body, parse_params
from querybatch.api.ranges import stored_response
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES, body_doc, json_body_schema
from querybatch.domain.bulk import OPERATIONS, BulkBatchRequest, BulkStatus, parse_statuses
from querybatch.domain.dates import LATEST_EPOCH
from querybatch.domain.poll_hint import retry_after
from querybatch.errors import BadRequest

NDJSON = "application/x-ndjson"
router = APIRouter(tags=["Bulk batches"])

CONFLICTS = ERROR_RESPONSES | {409: ERROR_RESPONSES[400] | {"description": "Wrong status"}}


@action_route(
    router,
    "POST",
    "/batches",
    "create_batch",
    status_code=201,
    response_model=BulkBatch,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(BulkBatchRequest)),
)
async def create_batch(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Create a batch running ``operation`` once per line of an uploaded JSON Lines file.

    The key's role must allow ``create_batch`` and the operation's own action.
    """
    raw = await json_body(request, services.settings.max_body_bytes)
    params = parse_params(BulkBatchRequest, raw)
    require(principal, OPERATIONS[params.operation])
    record = await services.bulk_batches.create(principal.caller, params)
    return model_response(bulk_batch(request_id_of(request), record), 201, exclude_unset=True)


@action_route(
    router,
    "GET",
    "/batches",
    "get_batches",
    response_model=BulkBatchList,
    responses=ERROR_RESPONSES,
)
async def get_batches(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
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
    status: Annotated[
        list[Annotated[str, Query(max_length=300)]] | None,
        Query(description="only batches in these statuses (repeated or comma-separated)"),
    ] = None,
) -> Response:
    """The tenant's batches and their statuses, ``limit`` at a time.

    Oldest first; newest first when both ``ge`` and ``le`` are given. Pass the answer's
    ``cursor`` (with the same filters) for the next page; it is null on the last page.
    """
    if ge is not None and le is not None and ge > le:
        raise BadRequest("Invalid value for parameter 'ge'", "ge must not be after le.")
    page = await services.bulk_batches.page(
        principal.caller,
        ge=ge,
        le=le,
        after=BULK_BATCH_CURSORS.decode(cursor) if cursor else None,
        limit=limit,
        statuses=_statuses(status),
    )
    following = BULK_BATCH_CURSORS.encode(*page.after) if page.after else None
    return model_response(
        bulk_batch_list(request_id_of(request), page, following), exclude_unset=True
    )


def _statuses(values: list[str] | None) -> frozenset[BulkStatus] | None:
    if not values:
        return None
    if len(values) > len(BulkStatus):
        raise BadRequest("Invalid value for parameter 'status'", "Too many statuses.")
    try:
        return parse_statuses(values)
    except ValueError as exc:
        raise BadRequest("Invalid value for parameter 'status'", str(exc)) from None


@action_route(
    router,
    "GET",
    "/batches/{batch}",
    "get_batch",
    response_model=BulkBatch,
    responses=ERROR_RESPONSES,
)
async def get_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    download: Annotated[bool, Query()] = False,
) -> Response:
    """The batch and its line counts; with ``download=true`` also a temporary link to its
    results file.

    ``download`` is null while the batch has no results file yet. The link reads rows, so
    asking for it needs ``get_data`` too.
    """
    if download:
        require(principal, "get_data")
    view = await services.bulk_batches.view(principal.caller, batch)
    record = view.record
    link = None
    if download and record.result_file_id is not None:
        expires = round(time.time() + services.settings.download_ttl, 3)
        base = public_base(request, services) + route_prefix(request)
        url = services.links.url(base, "GET", f"/batches/{record.id}/results", expires)
        link = DownloadLink(url=url, validity_ts=expires)
    response = model_response(
        bulk_batch(
            request_id_of(request), record, with_download=download, link=link, lines=view.lines
        ),
        exclude_unset=True,
    )
    if not record.status.is_final:
        response.headers["Retry-After"] = str(retry_after(record.created_ts, None, time.time()))
    return response


@action_route(
    router,
    "PATCH",
    "/batches/{batch}",
    "update_batch",
    response_model=BulkBatch,
    responses=CONFLICTS,
    openapi_extra=body_doc(json_body_schema(StatusChange)),
)
async def update_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Cancel the batch (``{"status": "cancel"}``); finished operations keep their results.

    Cancelling a batch already cancelled is harmless; a finished one, a conflict.
    """
    raw = await json_body(request, services.settings.max_body_bytes)
    change = parse_params(StatusChange, raw)
    if change.status is not BulkStatus.CANCEL:
        raise BadRequest("Invalid value for parameter 'status'", "The only change is 'cancel'.")
    record = await services.bulk_batches.cancel(principal.caller, batch)
    return model_response(bulk_batch(request_id_of(request), record), exclude_unset=True)


@action_route(
    router,
    "DELETE",
    "/batches/{batch}",
    "delete_batch",
    response_model=BulkBatch,
    responses=ERROR_RESPONSES,
)
async def delete_batch(
    batch: str,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Delete the batch: its operations stop, and it and its files are gone (404 after)."""
    record = await services.bulk_batches.delete(principal.caller, batch)
    return model_response(bulk_batch(request_id_of(request), record), exclude_unset=True)


@router.get(
    "/batches/{batch}/results",
    name="download_batch_results",
    operation_id="download_batch_results",
    responses=ERROR_RESPONSES
    | {
        200: {"description": "One JSON line per operation", "content": {NDJSON: {}}},
        206: {"description": "The byte range asked for", "content": {NDJSON: {}}},
        416: {"description": "The byte range starts past the end of the file"},
    },
)
async def download_batch_results(
    batch: str,
    request: Request,
    services: ServicesDep,
    _link: Annotated[float, Depends(SignedLink())],
) -> Response:
    """The batch's results file (reached by the signed link of ``GET /batches/{batch}``).

    A single ``Range`` is served (206), so an interrupted download resumes; the ETag is the
    file's SHA-256, for ``If-Range``.
    """
    results = await services.bulk_batches.download(batch)
    headers = {"Content-Disposition": f'attachment; filename="{results.batch_id}.jsonl"'}
    etag = f'"{results.sha256}"'
    return stored_response(
        request, results.size, etag, results.read, "application/x-ndjson", headers
    )
