"""Upload URLs for bulk batch files: ``POST /cache``, the signed ``PUT``, ``DELETE /cache/{h}``.

An upload is a handler and a signed URL valid for ``upload_ttl`` seconds; what a PUT may
store, and when, is :class:`~querybatch.engine.uploads.Uploads`' business.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, public_base, route_prefix
from querybatch.api.bulk_shapes import (
    Uploaded,
    UploadUrl,
    Withdrawn,
    upload_url,
    uploaded,
    withdrawn,
)
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.links import SignedLink
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES

router = APIRouter(tags=["Bulk batches"])

Handler = Annotated[str, Path(max_length=64)]


@action_route(
    router,
    "POST",
    "/cache",
    "create_upload_url",
    status_code=201,
    response_model=UploadUrl,
    responses=ERROR_RESPONSES,
)
async def create_upload_url(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A handler and a signed URL to ``PUT`` one file to, valid for ``upload_ttl`` seconds."""
    upload = await services.uploads.create(principal.caller)
    base = public_base(request, services) + route_prefix(request)
    url = services.links.url(base, "PUT", f"/cache/{upload.handler}", upload.expires_at)
    return model_response(upload_url(request_id_of(request), upload, url), 201, exclude_unset=True)


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
    """Store the request body as the upload's file (the signed URL is the credential).

    A failed or oversized PUT leaves the upload as it was; a filled one takes no second PUT.
    """
    declared = request.headers.get("content-length", "")
    received = await services.uploads.receive(
        handler, request.stream(), int(declared) if declared.isdigit() else None
    )
    return model_response(uploaded(request_id_of(request), received), exclude_unset=True)


@action_route(
    router,
    "DELETE",
    "/cache/{handler}",
    "delete_upload_url",
    response_model=Withdrawn,
    responses=ERROR_RESPONSES
    | {409: ERROR_RESPONSES[400] | {"description": "A batch is copying the file"}},
)
async def delete_upload_url(
    handler: Handler,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Withdraw an upload URL and delete its file (batches keep their own copies)."""
    await services.uploads.withdraw(principal.caller, handler)
    return model_response(withdrawn(request_id_of(request), handler), exclude_unset=True)
