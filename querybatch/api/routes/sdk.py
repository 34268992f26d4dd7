"""The official SDK's login, data source and team resources: ``/ds/logins``,
``/ds/login/{login_id}[/accounts]``, ``/teams/{team_id}/datasource/{data_source_id}`` and
``/v1/teams/{team_id}``.

Team-scoped paths carry the caller's numeric team id (``GET /whoami`` shows it); another
team's id is 404, as is everything of another tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from querybatch.api.answer import model_response
from querybatch.api.deps import PrincipalDep, ServicesDep, TeamId
from querybatch.api.errors import request_id_of
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.api.sdk_shapes import (
    AccountList,
    DetailsAnswer,
    LoginAnswer,
    LoginList,
    TeamAnswer,
    account_list,
    details_answer,
    login_answer,
    login_list,
    team_answer,
)

router = APIRouter(tags=["Logins, data sources and teams"])

LoginId = Annotated[str, Path(max_length=64)]


@action_route(
    router,
    "GET",
    "/ds/logins",
    "get_accounts",
    name="list_logins",
    response_model=LoginList,
    responses=ERROR_RESPONSES,
)
async def list_logins(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """The logins of the configured data sources (every tenant reads the same sources)."""
    logins = await services.catalog.logins(principal.caller)
    return model_response(login_list(request_id_of(request), logins))


@action_route(
    router,
    "GET",
    "/ds/login/{login_id}",
    "get_accounts",
    name="get_login",
    response_model=LoginAnswer,
    responses=ERROR_RESPONSES,
)
async def get_login(
    login_id: LoginId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """One login by its id."""
    login = await services.catalog.login(principal.caller, login_id)
    return model_response(login_answer(request_id_of(request), login))


@action_route(
    router,
    "GET",
    "/ds/login/{login_id}/accounts",
    "get_accounts",
    name="list_login_accounts",
    response_model=AccountList,
    responses=ERROR_RESPONSES,
)
async def list_login_accounts(
    login_id: LoginId,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The accounts a login can read, ``limit`` from ``offset`` (``meta.paginate.total``)."""
    login = await services.catalog.login(principal.caller, login_id)
    return model_response(account_list(request_id_of(request), login, offset, limit))


@action_route(
    router,
    "GET",
    "/teams/{team_id}/datasource/{data_source_id}",
    "get_fields",
    name="get_datasource_details",
    response_model=DetailsAnswer,
    responses=ERROR_RESPONSES,
)
async def get_datasource_details(
    team_id: TeamId,
    data_source_id: Annotated[str, Path(max_length=50)],
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A data source's name, fields and per-query settings, as far as its connector knows."""
    details = await services.catalog.details(principal.caller, team_id, data_source_id)
    return model_response(details_answer(request_id_of(request), details))


@action_route(
    router,
    "GET",
    "/v1/teams/{team_id}",
    "who_am_i",
    name="get_team",
    response_model=TeamAnswer,
    responses=ERROR_RESPONSES,
)
async def get_team(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The caller's tenant as a team; any other team id is 404."""
    team = await services.access.team(principal, team_id)
    return model_response(team_answer(request_id_of(request), team))
