"""``/query/status`` and ``/query/results``: a query's state, and its rows page by page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from querybatch.api.answer import Page, query_response, rows_response
from querybatch.api.auth import Principal, require
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES, DataResponse
from querybatch.api.services import Services
from querybatch.domain.query import ID_PATTERN

router = APIRouter(tags=["Query status"])

ScheduleId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class StatusParams(BaseModel):
    """Parameters of ``/query/status``."""

    model_config = ConfigDict(extra="ignore")
    schedule_id: ScheduleId
    offset_start: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    offset_end: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class ResultsParams(BaseModel):
    """Parameters of ``/query/results``."""

    model_config = ConfigDict(extra="ignore")
    schedule_id: ScheduleId
    offset: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    limit: Annotated[int, Field(ge=1, le=100_000)] = 100


@action_route(
    router,
    "GET",
    "/query/status",
    "get_query_status",
    response_model=DataResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(StatusParams),
)
async def get_query_status(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A query's status, progress and workflow counters; its rows once it succeeded.

    Rows are data: a key whose role does not allow ``get_data`` gets the status of a
    query that succeeded, without its rows.
    """
    return await query_status_answer(request, services, principal)


async def query_status_answer(
    request: Request, services: Services, principal: Principal
) -> Response:
    """``GET /query/status`` (also answered by :mod:`querybatch.api.poll_lane`)."""
    params = parse_params(
        StatusParams, await request_params(request, services.settings.max_body_bytes)
    )
    answer = await services.queries.status(
        principal.caller, params.schedule_id, rows=principal.statement.permits("get_data")
    )
    page = Page.inclusive(params.offset_start, params.offset_end)
    return await query_response(services, request, answer, "json", page, "/query/status")


@action_route(
    router,
    "GET",
    "/query/results",
    "get_query_results",
    response_model=DataResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(ResultsParams),
)
async def get_query_results(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A finished query's rows in its output format (the batch's ``query_output_format``).

    Rows are data: the key's role must allow ``get_data`` too.
    """
    require(principal, "get_data")
    params = parse_params(
        ResultsParams, await request_params(request, services.settings.max_body_bytes)
    )
    rows = await services.queries.results(principal.caller, params.schedule_id)
    fmt = rows.query.batch_settings.query_output_format
    page = Page(params.offset, params.offset + params.limit, ("offset", "limit"))
    return await rows_response(services, request, rows, fmt, page, "/query/results")
