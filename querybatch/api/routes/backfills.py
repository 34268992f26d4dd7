"""The official SDK's backfills: ``backfills.create``, ``get``, ``get_latest``,
``list_incomplete`` and ``cancel``. Creating and cancelling need ``manage_backfills``,
reading ``get_transfer`` (one) or ``list_transfers`` (the incomplete ones). Another team's
id, and another tenant's transfer or backfill, are 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from querybatch.api.answer import model_response, request_meta
from querybatch.api.auth import Principal
from querybatch.api.backfill_shapes import (
    BackfillAnswer,
    BackfillBody,
    BackfillList,
    BackfillStatusBody,
    backfill_answer,
    backfill_list,
)
from querybatch.api.deps import PrincipalDep, ServicesDep, TeamId
from querybatch.api.params import json_model
from querybatch.api.routing import action_route
from querybatch.api.schemas import (
    CONFLICT_RESPONSES,
    ERROR_RESPONSES,
    body_doc,
    json_body_schema,
)
from querybatch.api.services import Services

router = APIRouter(tags=["Backfills"])

MAX_ID = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
OF_TRANSFER = "/teams/{team_id}/transfers/{transfer_id}/backfills"
ITEM = "/teams/{team_id}/backfills/{backfill_id}"
BACKFILL_ACTION = "get_transfer"  # reading a backfill is reading its transfer


@action_route(
    router,
    "POST",
    OF_TRANSFER,
    "manage_backfills",
    name="create_backfill",
    operation_id="createBackfill",
    response_model=BackfillAnswer,
    responses=CONFLICT_RESPONSES,
    openapi_extra=body_doc(json_body_schema(BackfillBody)),
)
async def create_backfill(
    team_id: TeamId,
    transfer_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Load the transfer's data dates from ``range_start`` to ``range_end``: one run each."""
    body = await json_model(request, services.settings.max_body_bytes, BackfillBody)
    made = await services.backfills.create(
        principal.caller, team_id, transfer_id, body.range_start, body.range_end
    )
    return model_response(backfill_answer(request_meta(request), made))


@action_route(
    router,
    "GET",
    OF_TRANSFER + "/latest",
    "get_transfer",
    name="get_latest_backfill",
    operation_id="getLatestBackfill",
    response_model=BackfillAnswer,
    responses=ERROR_RESPONSES,
)
async def get_latest_backfill(
    team_id: TeamId,
    transfer_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The transfer's newest backfill (404 when it has none)."""
    found = await services.backfills.latest(principal.caller, team_id, transfer_id)
    return model_response(backfill_answer(request_meta(request), found))


@action_route(
    router,
    "GET",
    "/teams/{team_id}/backfills",
    "list_transfers",
    name="list_incomplete_backfills",
    operation_id="listIncompleteBackfills",
    response_model=BackfillList,
    responses=ERROR_RESPONSES,
)
async def list_incomplete_backfills(
    team_id: TeamId, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The team's backfills that are neither completed nor cancelled, newest first."""
    found = await services.backfills.incomplete(principal.caller, team_id)
    return model_response(backfill_list(request_meta(request), found))


@action_route(
    router,
    "GET",
    ITEM,
    BACKFILL_ACTION,
    name="get_backfill",
    operation_id="getBackfillById",
    response_model=BackfillAnswer,
    responses=ERROR_RESPONSES,
)
async def get_backfill(
    team_id: TeamId,
    backfill_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """A backfill: its status, counters and error report."""
    return await backfill_poll_answer(request, services, principal, team_id, backfill_id)


async def backfill_poll_answer(
    request: Request, services: Services, principal: Principal, team_id: int, backfill_id: int
) -> Response:
    """What ``GET`` of a backfill answers; the poll lane answers its polls with it too."""
    found = await services.backfills.get(principal.caller, team_id, backfill_id)
    return model_response(backfill_answer(request_meta(request), found))


@action_route(
    router,
    "PATCH",
    ITEM,
    "manage_backfills",
    name="cancel_backfill",
    operation_id="updateBackfillStatus",
    response_model=BackfillAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=body_doc(json_body_schema(BackfillStatusBody)),
)
async def cancel_backfill(
    team_id: TeamId,
    backfill_id: Id,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """Cancel a backfill (``{"status": "CANCELLED"}``): what has loaded stays."""
    await json_model(request, services.settings.max_body_bytes, BackfillStatusBody)
    found = await services.backfills.cancel(principal.caller, team_id, backfill_id)
    return model_response(backfill_answer(request_meta(request), found))
