"""Upload URLs for bulk batch files: ``POST /cache``, the signed ``PUT``, ``DELETE /cache/{h}``.

An upload is a handler and a signed URL valid for ``upload_ttl`` seconds. The PUT streams
its body into the store chunk by chunk (into a part that becomes the upload's content only
once the whole body arrived), so a failed or oversized PUT leaves the upload as it was. A
filled upload accepts no second PUT, and lives ``upload_ttl`` seconds after it was filled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from querybatch.api.answer import json_response, public_base, route_prefix
from querybatch.api.auth import Principal
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.links import SignedLink
from querybatch.api.schemas import ERROR_RESPONSES, Loose
from querybatch.api.services import Services
from querybatch.engine.bulk_io import ChunkWriter
from querybatch.errors import Conflict, NotFound, PayloadTooLarge
from querybatch.store.bulk_files import FileRecord

router = APIRouter(tags=["Bulk batches"])

Handler = Annotated[str, Path(max_length=64)]


class UploadUrl(Loose):
    """Where and until when a file can be uploaded."""

    url: str
    handler: str
    validity_ts: float


class Uploaded(Loose):
    """What a PUT stored."""

    handler: str
    size: int
    sha256: str


class Withdrawn(Loose):
    """An upload that was deleted."""

    handler: str
    deleted: bool


@router.post(
    "/cache",
    name="create_upload_url",
    operation_id="create_upload_url",
    status_code=201,
    response_model=UploadUrl,
    responses=ERROR_RESPONSES,
)
async def create_upload_url(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("create_upload_url"))],
) -> Response:
    """A handler and a signed URL to ``PUT`` one file to, valid for ``upload_ttl`` seconds."""
    now = time.time()
    expires = round(now + services.settings.upload_ttl, 3)
    upload = await services.store.files.create( principal.key.account, "upload", now, expires_at=expires
    )
    base = public_base(request, services) + route_prefix(request)
    url = services.links.url(base, "PUT", f"/cache/{upload.id}", expires)
    body = {
        "meta": {"request_id": request_id_of(request)},
        "url": url,
        "handler": upload.id,
        "validity_ts": expires,
    }
    return json_response(body, 201)


@router.put(
    "/cache/{handler}",
    name="upload_file",
    operation_id="upload_file",
    response_model=Uploaded,
    responses=ERROR_RESPONSES
    | {
        409: ERROR_RESPONSES[400] | {"description": "A file was uploaded already"},
        413: ERROR_RESPONSES[400] | {"description": "The file is too large"},
    },
)
async def upload_file(
    handler: Handler,
    request: Request,
    services: ServicesDep,
    _link: Annotated[float, Depends(SignedLink())],
) -> Response:
    """Store the request body as the upload's file (the signed URL is the credential)."""
    upload = await services.store.files.get( handler)
    if upload is None or upload.kind != "upload":
        raise NotFound(f"No upload with handler '{handler}'")
    if upload.state == "complete":
        raise _already_filled()
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    writer = await _receive(services, request, upload, limit)
    filled = await services.store.files.finish_upload(
        handler,
        writer.file_id,
        writer.size,
        writer.sha256,
        time.time() + services.settings.upload_ttl,
    )
    if not filled:
        raise _already_filled()
    body = {
        "meta": {"request_id": request_id_of(request)},
        "handler": handler,
        "size": writer.size,
        "sha256": writer.sha256,
    }
    return json_response(body)


async def _receive(
    services: Services, request: Request, upload: FileRecord, limit: int
) -> ChunkWriter:
    """Stream the body into a new part file; dropped again if anything goes wrong."""
    store = services.store
    part = await store.files.create( upload.account, "part", time.time(), expires_at=upload.expires_at
    )
    writer = ChunkWriter(store, part.id)
    try:
        async for piece in request.stream():
            if writer.size + len(piece) > limit:
                raise _too_large(limit)
            await writer.write(piece)
        await writer.close()
    except BaseException:
        # Shielded: a client that hung up cancels this request, but not the clean-up.
        await asyncio.shield(store.files.delete( part.id))
        raise
    return writer


def _already_filled() -> Conflict:
    return Conflict(
        "A file was uploaded to this handler already",
        "An upload URL takes one file; ask for a new one with POST /cache.",
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than {limit} bytes.")


@router.delete(
    "/cache/{handler}",
    name="delete_upload_url",
    operation_id="delete_upload_url",
    response_model=Withdrawn,
    responses=ERROR_RESPONSES
    | {409: ERROR_RESPONSES[400] | {"description": "A batch is copying the file"}},
)
async def delete_upload_url(
    handler: Handler,
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("delete_upload_url"))],
) -> Response:
    """Withdraw an upload URL and delete its file (batches keep their own copies)."""
    outcome = await services.store.files.withdraw_upload( principal.key.account, handler, time.time()
    )
    if outcome == "missing":
        raise NotFound(f"No upload with handler '{handler}'")
    if outcome == "busy":
        raise Conflict(
            "A batch is copying this upload",
            "Delete it once the batch has left the copying status.",
        )
    body = {"meta": {"request_id": request_id_of(request)}, "handler": handler, "deleted": True}
    return json_response(body)
