"""``/query/sources``, ``/query/accounts``, ``/query/fields`` and ``/query/segments``: which data
sources the server has and what each offers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.responses import Response

from querybatch.api.answer import model_response
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.api.services import Services
from querybatch.api.source_shapes import (
    AccountsResponse,
    FieldsResponse,
    SegmentsResponse,
    SourcesResponse,
    accounts_response,
    fields_response,
    segments_response,
    sources_response,
)
from querybatch.domain.query import _split_list

router = APIRouter(tags=["Data source"])

DsId = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$")]


class SourceParams(BaseModel):
    """Parameters naming a data source (and optionally its logins)."""

    model_config = ConfigDict(extra="ignore")
    ds_id: DsId
    ds_users: Annotated[
        list[Annotated[str, StringConstraints(max_length=255)]],
        BeforeValidator(_split_list),
        Field(max_length=100),
    ] = Field(default_factory=list)
    cache_minutes: Annotated[int, Field(ge=60, le=1440)] | None = None


async def source_params(services: Services, request: Request) -> SourceParams:
    """The validated parameters naming a data source."""
    return parse_params(
        SourceParams, await request_params(request, services.settings.max_body_bytes)
    )


@action_route(
    router,
    "GET",
    "/query/sources",
    "get_fields",
    name="list_sources",
    response_model=SourcesResponse,
    responses=ERROR_RESPONSES,
)
async def list_sources(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The configured data sources and their connector types (every tenant reads the same)."""
    return model_response(sources_response(request_id_of(request), services.catalog.configured()))


@action_route(
    router,
    "GET",
    "/query/accounts",
    "get_accounts",
    operation_id="getAccounts",
    response_model=AccountsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_accounts(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The data source's logins and the accounts each can read."""
    params = await source_params(services, request)
    logins = await services.catalog.accounts(params.ds_id, params.ds_users)
    answer = accounts_response(request_id_of(request), params.cache_minutes, logins)
    return model_response(answer)


@action_route(
    router,
    "GET",
    "/query/fields",
    "get_fields",
    response_model=FieldsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_fields(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The data source's fields: dimensions (``dim``) and metrics (``met``) with data types."""
    params = await source_params(services, request)
    fields = await services.catalog.fields(params.ds_id)
    return model_response(fields_response(request_id_of(request), fields))


@action_route(
    router,
    "GET",
    "/query/segments",
    "get_segments",
    response_model=SegmentsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_segments(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The data source's segments per login (sources without segments list none)."""
    params = await source_params(services, request)
    logins = await services.catalog.segments(params.ds_id, params.ds_users)
    answer = segments_response(request_id_of(request), logins)
    return model_response(answer)
