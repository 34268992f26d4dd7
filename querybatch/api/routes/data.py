"""``/query/data/{format}``: run a query, or answer one that exists, waiting up to sync_timeout."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from querybatch.api.answer import Page, rows_response, status_response
from querybatch.api.auth import Principal
from querybatch.api.deps import Authorize, ServicesDep
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.schemas import ERROR_RESPONSES, DataResponse
from querybatch.api.services import Services
from querybatch.domain.query import DataRequest, SpecError
from querybatch.domain.status import QueryStatus
from querybatch.errors import BadRequest, StatusNotFound
from querybatch.store.records import QueryRecord

router = APIRouter(tags=["Get data"])

OutputFormat = Literal["json", "keyjson", "ndjson", "csv", "tsv", "parquet"]
GetData = Annotated[Principal, Depends(Authorize("get_data"))]


def spec_error(exc: SpecError, prefix: str = "") -> BadRequest:
    """A query that cannot run, as a BAD_REQUEST naming the parameter."""
    return BadRequest(f"{prefix}Invalid value for parameter '{exc.parameter}'", str(exc))


async def answer(
    services: Services,
    request: Request,
    query: QueryRecord,
    fmt: str,
    data: DataRequest,
    wait: float,
) -> Response:
    """Wait for the query up to ``wait`` seconds, then give its rows or its status."""
    query = await services.engine.wait(query, wait)
    if query.status is not QueryStatus.SUCCESS:
        return await status_response(services, request, query)
    page = Page.inclusive(data.offset_start, data.offset_end)
    return await rows_response(services, request, query, fmt, page, f"/query/data/{fmt}")


async def get_data(
    output_format: OutputFormat, request: Request, services: ServicesDep, principal: GetData
) -> Response:
    """Run a query and return its rows, or its status if it outlives ``sync_timeout``.

    A request naming the ``schedule_id`` of an existing query (the other parameters may be
    left out, ``ds_id`` even empty) answers that query instead of starting a new one; so
    does repeating a request without a schedule id, whose id is derived from its parameters.
    """
    params = await request_params(request, services.settings.max_body_bytes)
    data = parse_params(DataRequest, params)
    caller = principal.caller
    waits_explicitly = "sync_timeout" in params
    if data.schedule_id:
        existing = await services.engine.find_query(caller, data.schedule_id)
        if existing is not None:
            wait = data.sync_timeout if waits_explicitly else 0
            return await answer(services, request, existing, output_format, data, wait)
        if not data.ds_id:
            raise StatusNotFound(
                f"No query with schedule_id '{data.schedule_id}'",
                "It never existed for this account, or its results expired.",
            )
    try:
        spec = await services.engine.plan(data)
    except SpecError as exc:
        raise spec_error(exc) from exc
    query = await services.engine.submit_query(
        caller, data, spec, request.scope["state"]["request_id"]
    )
    return await answer(services, request, query, output_format, data, data.sync_timeout)


for method in ("GET", "POST"):
    router.add_api_route(
        "/query/data/{output_format}",
        get_data,
        methods=[method],
        name="get_data",
        operation_id=f"get_data_{method.lower()}",
        response_model=DataResponse,
        responses=ERROR_RESPONSES,
        summary="Query data",
        openapi_extra=documented(DataRequest),
    )
