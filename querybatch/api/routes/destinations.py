"""The official SDK's destinations: ``/teams/{team_id}/destinations[...]`` (issue 18).

Team-scoped paths carry the caller's numeric team id (``GET /whoami`` shows it); another
team's id, and another tenant's destination, are 404. Secrets go in and never come out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, request_meta
from querybatch.api.deps import PrincipalDep, ServicesDep, TeamId
from querybatch.api.destination_shapes import (
    ConnectionAnswer,
    ConnectionBody,
    DestinationAnswer,
    DestinationBody,
    DestinationList,
    UpdateBody,
    UsageAnswer,
    connection_answer,
    destination_answer,
    destination_list,
    usage_answer,
)
from querybatch.api.params import json_model
from querybatch.api.routing import action_route
from querybatch.api.schemas import (
    CONFLICT_RESPONSES,
    ERROR_RESPONSES,
    body_doc,
    json_body_schema,
)

router = APIRouter(tags=["Destinations"])

DestinationId = Annotated[int, Path(ge=1, le=2**31 - 1)]
COLLECTION = "/teams/{team_id}/destinations"
ITEM = COLLECTION + "/{destination_id}"


@action_route(
    router,
    "GET",
    COLLECTION,
    "list_destinations",
    operation_id="listDestinations",
    response_model=DestinationList,
    responses=ERROR_RESPONSES,
)
async def list_destinations(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The team's destinations, oldest first."""
    views = await services.destinations.list_all(principal.caller, team_id)
    return model_response(destination_list(request_meta(request), views))


@action_route(
    router,
    "POST",
    COLLECTION,
    "manage_destinations",
    name="create_destination",
    operation_id="createDestination",
    status_code=201,
    response_model=DestinationAnswer,
    responses=CONFLICT_RESPONSES,
    openapi_extra=body_doc(json_body_schema(DestinationBody)),
)
async def create_destination(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Create a destination; its secrets are stored encrypted and never shown again."""
    body = await json_model(request, services.settings.max_body_bytes, DestinationBody)
    view = await services.destinations.create(principal.caller, team_id, body.given())
    answer = model_response(destination_answer(request_meta(request), view), 201)
    answer.headers["Location"] = f"/teams/{team_id}/destinations/{view.id}"
    return answer


@action_route(
    router,
    "POST",
    COLLECTION + "/test-connection",
    "manage_destinations",
    name="test_destination_connection",
    operation_id="testConnection",
    response_model=ConnectionAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(ConnectionBody)),
)
async def test_connection(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Try a destination's fields without storing them (a failed try is a 200 too)."""
    body = await json_model(request, services.settings.max_body_bytes, ConnectionBody)
    check = await services.destinations.test_connection(
        principal.caller, team_id, body.given(), body.destination_id
    )
    return model_response(connection_answer(request_meta(request), check))


@action_route(
    router,
    "GET",
    ITEM,
    "get_destination",
    operation_id="getDestination",
    response_model=DestinationAnswer,
    responses=ERROR_RESPONSES,
)
async def get_destination(
    team_id: TeamId,
    destination_id: DestinationId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A destination and its fields (secrets shown as set or not, never their value)."""
    view = await services.destinations.get(principal.caller, team_id, destination_id)
    return model_response(destination_answer(request_meta(request), view))


@action_route(
    router,
    "PUT",
    ITEM,
    "manage_destinations",
    name="update_destination",
    operation_id="updateDestination",
    response_model=DestinationAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(UpdateBody)),
)
async def update_destination(
    team_id: TeamId,
    destination_id: DestinationId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Replace a destination's name and fields; secrets left out are kept, ``new_password``
    rotates the password."""
    body = await json_model(request, services.settings.max_body_bytes, UpdateBody)
    view = await services.destinations.update(
        principal.caller, team_id, destination_id, body.given()
    )
    return model_response(destination_answer(request_meta(request), view))


@action_route(
    router,
    "DELETE",
    ITEM,
    "manage_destinations",
    name="delete_destination",
    operation_id="deleteDestination",
    status_code=204,
    response_class=Response,
    responses=CONFLICT_RESPONSES,
)
async def delete_destination(
    team_id: TeamId,
    destination_id: DestinationId,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Delete a destination (409 while a transfer loads into it)."""
    await services.destinations.delete(principal.caller, team_id, destination_id)
    return Response(status_code=204)


@action_route(
    router,
    "GET",
    ITEM + "/usage",
    "get_destination",
    name="get_destination_usage",
    operation_id="getDestinationUsage",
    response_model=UsageAnswer,
    responses=ERROR_RESPONSES,
)
async def get_destination_usage(
    team_id: TeamId,
    destination_id: DestinationId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The transfers that load into a destination."""
    usage = await services.destinations.usage(principal.caller, team_id, destination_id)
    return model_response(usage_answer(request_meta(request), usage))
