"""``/query/accounts``, ``/query/fields`` and ``/query/segments``: what a data source offers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.responses import Response

from querybatch.api.answer import json_response
from querybatch.api.auth import Principal
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.schemas import ERROR_RESPONSES, AccountsResponse, FieldsResponse
from querybatch.api.services import Services
from querybatch.connectors.base import Connector
from querybatch.domain.query import _split_list
from querybatch.errors import BadRequest

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


async def source_of(services: Services, request: Request) -> tuple[SourceParams, Connector]:
    """The validated parameters and the data source they name."""
    params = parse_params(
        SourceParams, await request_params(request, services.settings.max_body_bytes)
    )
    connector = services.sources.get(params.ds_id)
    if connector is None:
        known = ", ".join(sorted(services.sources))
        raise BadRequest(
            "Invalid value for parameter 'ds_id'",
            f"Unknown data source {params.ds_id!r} (known: {known})",
        )
    return params, connector


@router.get(
    "/query/accounts",
    name="get_accounts",
    operation_id="getAccounts",
    response_model=AccountsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_accounts(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("get_accounts"))],
) -> Response:
    """The data source's logins and the accounts each can read."""
    params, connector = await source_of(services, request)
    logins = await connector.accounts(params.ds_users)
    data: list[dict[str, Any]] = [
        {
            "ds_user": login.ds_user,
            "display_name": login.display_name,
            "cache_time": None,
            "accounts": [
                {
                    "account_id": a.account_id,
                    "account_name": a.account_name,
                    "group_name": a.group_name,
                }
                for a in login.accounts
            ],
        }
        for login in logins
    ]
    meta = {"request_id": request_id_of(request), "query": {"cache_minutes": params.cache_minutes}}
    return json_response({"meta": meta, "data": data})


@router.get(
    "/query/fields",
    name="get_fields",
    operation_id="get_fields",
    response_model=FieldsResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_fields(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("get_fields"))],
) -> Response:
    """The data source's fields: dimensions (``dim``) and metrics (``met``) with data types."""
    params, _ = await source_of(services, request)
    fields = await services.sources.fields(params.ds_id)
    data: list[dict[str, Any]] = [
        {
            "field_id": f.field_id,
            "field_name": f.field_name,
            "field_type": f.field_type,
            "data_type": f.data_type,
            "description": f.description,
            "group_name": f.group_name,
            "is_filterable": f.is_filterable,
            "report_types": [],
            "entity_type": "ds_metric" if f.is_metric else "ds_dimension",
            "is_non_aggregatable": f.is_metric and f.aggregation not in ("sum", "count"),
        }
        for f in fields.values()
    ]
    return json_response({"meta": {"request_id": request_id_of(request)}, "data": data})


@router.get(
    "/query/segments",
    name="get_segments",
    operation_id="get_segments",
    responses=ERROR_RESPONSES,
    openapi_extra=documented(SourceParams),
)
async def get_segments(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(Authorize("get_segments"))],
) -> Response:
    """The data source's segments per login (sources without segments list none)."""
    params, connector = await source_of(services, request)
    logins = await connector.accounts(params.ds_users)
    data: list[dict[str, Any]] = [
        {
            "ds_user": login.ds_user,
            "display_name": login.display_name,
            "cache_time": None,
            "segments": [],
        }
        for login in logins
    ]
    return json_response({"meta": {"request_id": request_id_of(request)}, "data": data})
