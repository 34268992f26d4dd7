"""The official SDK's transfer runs: ``transfers.list_runs`` and ``transfer_runs.get``.

Runs are made by the transfer runner on the leading node; these routes only read them.
Another team's id, and another tenant's transfer or run, are 404.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, request_meta
from querybatch.api.deps import PrincipalDep, ServicesDep, TeamId
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.api.transfer_run_shapes import RunDetailAnswer, RunList, run_detail, run_list
from querybatch.engine.transfer_runs import RunsQuery
from querybatch.errors import BadRequest

router = APIRouter(tags=["Transfer runs"])

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
DateTime = Annotated[str, Query(min_length=10, max_length=40)]


@action_route(
    router,
    "GET",
    "/teams/{team_id}/transfers/{transfer_id}/runs",
    "get_transfer",
    name="list_transfer_runs",
    operation_id="listTransferRuns",
    response_model=RunList,
    responses=ERROR_RESPONSES,
)
async def list_transfer_runs(
    team_id: TeamId,
    transfer_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    start_date: DateTime,
    end_date: DateTime,
    filter_issues_only: Annotated[bool, Query()] = False,
    sort_field: Annotated[Literal["created_time", "data_date", "ended_time"], Query()] = (
        "created_time"
    ),
    sort_direction: Annotated[Literal["ASC", "DESC"], Query()] = "DESC",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """The transfer's runs whose data date is from ``start_date`` to ``end_date``."""
    first, last = _day(start_date, "start_date"), _day(end_date, "end_date")
    if last < first:
        raise BadRequest("Invalid value for parameter 'end_date'", "end_date is before start_date")
    query = RunsQuery(
        first,
        last,
        issues_only=filter_issues_only,
        sort_field=sort_field,
        descending=sort_direction == "DESC",
        limit=limit,
        offset=offset,
    )
    runs = await services.transfer_runs.list_runs(principal.caller, team_id, transfer_id, query)
    return model_response(run_list(request_meta(request), runs))


@action_route(
    router,
    "GET",
    "/teams/{team_id}/transfer_runs/{transfer_run_id}",
    "get_transfer",
    name="get_transfer_run",
    operation_id="getTransferRun",
    response_model=RunDetailAnswer,
    responses=ERROR_RESPONSES,
)
async def get_transfer_run(
    team_id: TeamId,
    transfer_run_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """One run: its status, data date, rows, times, error and the queries of its batch."""
    found = await services.transfer_runs.get(principal.caller, team_id, transfer_run_id)
    return model_response(run_detail(request_meta(request), found))


def _day(value: str, name: str) -> date:
    """The date of an ISO date or date-time (the SDK sends date-times)."""
    try:
        return datetime.fromisoformat(value).date()
    except ValueError as exc:
        raise BadRequest(
            f"Invalid value for parameter '{name}'", "An ISO 8601 date or date-time"
        ) from exc
