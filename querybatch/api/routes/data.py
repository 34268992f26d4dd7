"""``/query/data/{format}``: run a query, or answer one that exists, waiting up to sync_timeout."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from querybatch.api.answer import Page, query_response
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES, DataResponse
from querybatch.domain.query import DataRequest

router = APIRouter(tags=["Get data"])

OutputFormat = Literal["json", "keyjson", "ndjson", "csv", "tsv", "parquet"]


async def get_data(
    output_format: OutputFormat, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Run a query and return its rows, or its status if it outlives ``sync_timeout``.

    A request naming the ``schedule_id`` of an existing query (the other parameters may be
    left out, ``ds_id`` even empty) answers that query instead of starting a new one; so
    does repeating a request without a schedule id, whose id is derived from its parameters.
    """
    params = await request_params(request, services.settings.max_body_bytes)
    data = parse_params(DataRequest, params)
    answer = await services.queries.data(
        principal.caller,
        data,
        request_id_of(request),
        sync_timeout_given="sync_timeout" in params,
    )
    page = Page.inclusive(data.offset_start, data.offset_end)
    link_path = f"/query/data/{output_format}"
    return await query_response(services, request, answer, output_format, page, link_path)


for method in ("GET", "POST"):
    action_route(
        router,
        method,
        "/query/data/{output_format}",
        "get_data",
        operation_id=f"get_data_{method.lower()}",
        response_model=DataResponse,
        responses=ERROR_RESPONSES,
        summary="Query data",
        openapi_extra=documented(DataRequest),
    )(get_data)
