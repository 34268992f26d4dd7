"""The official SDK's transfers: ``/teams/{team_id}/transfers[...]`` (issue 18).

The configuration: create, validate, read, update, pause and resume, delete, and
what a transfer may use (runs: ``transfer_runs.py``, backfills: ``backfills.py``).
Another team's id, and another tenant's transfer, are 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, request_meta
from querybatch.api.deps import PrincipalDep, ServicesDep, TeamId
from querybatch.api.params import json_model
from querybatch.api.routing import action_route
from querybatch.api.schemas import (
    CONFLICT_RESPONSES,
    ERROR_RESPONSES,
    body_doc,
    json_body_schema,
)
from querybatch.api.transfer_shapes import (
    OptionsAnswer,
    SourcesAnswer,
    StateAnswer,
    StateBody,
    TransferBody,
    TransferCreated,
    TransferDetail,
    TransferList,
    TransferName,
    ValidationAnswer,
    options_answer,
    sources_answer,
    state_answer,
    transfer_detail,
    transfer_list,
    transfer_name,
    validation_answer,
)

router = APIRouter(tags=["Transfers"])

TransferId = Annotated[int, Path(ge=1, le=2**31 - 1)]
COLLECTION = "/teams/{team_id}/transfers"
ITEM = COLLECTION + "/{transfer_id}"


async def _body(request: Request, services: ServicesDep) -> TransferBody:
    return await json_model(request, services.settings.max_body_bytes, TransferBody)


@action_route(
    router,
    "GET",
    COLLECTION,
    "list_transfers",
    operation_id="listTransfers",
    response_model=TransferList,
    responses=ERROR_RESPONSES,
)
async def list_transfers(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The team's transfers, oldest first."""
    views = await services.transfers.list_all(principal.caller, team_id)
    return model_response(transfer_list(request_meta(request), views))


@action_route(
    router,
    "POST",
    COLLECTION,
    "manage_transfers",
    name="create_transfer",
    operation_id="createTransfer",
    status_code=201,
    response_model=TransferCreated,
    responses=CONFLICT_RESPONSES,
    openapi_extra=body_doc(json_body_schema(TransferBody)),
)
async def create_transfer(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Create a transfer (validated first: 400 names the first problem); it starts active."""
    body = await _body(request, services)
    view = await services.transfers.create(principal.caller, team_id, body.given())
    answer = model_response(
        TransferCreated(meta=request_meta(request), data=transfer_name(view)), 201
    )
    answer.headers["Location"] = f"/teams/{team_id}/transfers/{view.id}"
    return answer


@action_route(
    router,
    "GET",
    COLLECTION + "/available-sources",
    "list_transfers",
    name="get_available_sources",
    operation_id="getAvailableSources",
    response_model=SourcesAnswer,
    responses=ERROR_RESPONSES,
)
async def get_available_sources(
    team_id: TeamId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The data sources, the team's destinations and the destination types."""
    found = await services.transfers.available_sources(principal.caller, team_id)
    return model_response(sources_answer(found))


@action_route(
    router,
    "GET",
    COLLECTION + "/available-options",
    "list_transfers",
    name="get_transfer_options",
    operation_id="getTransferOptions",
    response_model=OptionsAnswer,
    responses=ERROR_RESPONSES,
)
async def get_transfer_options(
    team_id: TeamId,
    source_id: Annotated[str, Query(min_length=1, max_length=64)],
    destination_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A data source's schemas, logins, accounts and settings, into a destination."""
    found = await services.transfers.options(principal.caller, team_id, source_id, destination_id)
    return model_response(options_answer(found))


@action_route(
    router,
    "POST",
    COLLECTION + "/validations",
    "manage_transfers",
    name="validate_transfer",
    operation_id="validateTransfer",
    response_model=ValidationAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(TransferBody)),
)
async def validate_transfer(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Check a configuration without storing it (200 whether it is valid or not)."""
    body = await _body(request, services)
    issues = await services.transfers.validate(principal.caller, team_id, body.given())
    return model_response(validation_answer(issues))


@action_route(
    router,
    "GET",
    ITEM,
    "get_transfer",
    operation_id="getTransfer",
    response_model=TransferDetail,
    responses=ERROR_RESPONSES,
)
async def get_transfer(
    team_id: TeamId, transfer_id: TransferId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """A transfer's configuration."""
    view = await services.transfers.get(principal.caller, team_id, transfer_id)
    return model_response(transfer_detail(view))


@action_route(
    router,
    "PUT",
    ITEM,
    "manage_transfers",
    name="update_transfer",
    operation_id="updateTransfer",
    response_model=TransferName,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(TransferBody)),
)
async def update_transfer(
    team_id: TeamId,
    transfer_id: TransferId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Replace a transfer's configuration (validated first); its state is kept."""
    body = await _body(request, services)
    view = await services.transfers.update(principal.caller, team_id, transfer_id, body.given())
    return model_response(transfer_name(view))


@action_route(
    router,
    "POST",
    ITEM + "/validations",
    "manage_transfers",
    name="validate_transfer_update",
    operation_id="validateTransferUpdate",
    response_model=ValidationAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(TransferBody)),
)
async def validate_transfer_update(
    team_id: TeamId,
    transfer_id: TransferId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Check a configuration that would replace the transfer's, without storing it."""
    body = await _body(request, services)
    issues = await services.transfers.validate_update(
        principal.caller, team_id, transfer_id, body.given()
    )
    return model_response(validation_answer(issues))


@action_route(
    router,
    "PUT",
    ITEM + "/state",
    "manage_transfers",
    name="change_transfer_state",
    operation_id="changeTransferState",
    response_model=StateAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(StateBody)),
)
async def change_transfer_state(
    team_id: TeamId,
    transfer_id: TransferId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Pause a transfer (no new runs) or resume it (from its next scheduled time)."""
    body = await json_model(request, services.settings.max_body_bytes, StateBody)
    view = await services.transfers.set_state(
        principal.caller, team_id, transfer_id, body.transfer_state
    )
    return model_response(state_answer(view))


@action_route(
    router,
    "DELETE",
    ITEM,
    "manage_transfers",
    name="delete_transfer",
    operation_id="deleteTransfer",
    status_code=204,
    response_class=Response,
    responses=ERROR_RESPONSES,
)
async def delete_transfer(
    team_id: TeamId, transfer_id: TransferId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Delete a transfer."""
    await services.transfers.delete(principal.caller, team_id, transfer_id)
    return Response(status_code=204)
