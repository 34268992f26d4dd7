"""The poll lane: the GET requests clients poll, answered without the router's machinery.

Polls are most of what a busy server answers (``GET /query/status``, ``GET
/query/batch/{id}`` and its ``/status`` pages, and a transfer's ``GET
/teams/{team_id}/backfills/{id}``), and a poll's share of the framework
(routing through every route, building the endpoint's request, solving its dependencies) cost
more than the answer itself. This plain ASGI middleware recognises those four paths (under
every prefix), authorises the caller as :class:`~querybatch.api.deps.Authorize` does, and
calls the same answer functions as the routes, which remain what ``/openapi.json``
documents. Errors leave through the same :func:`~querybatch.api.errors.error_response`.
Anything it does not recognise as a plain poll (another method, a malformed page parameter,
``pretty`` output, a byte range) goes on to the app unchanged. Polls take turns (one at a
time) to work their answers out, and while the engine works they take at most their share
of the event loop (:mod:`querybatch.api.poll_budget`), so that the work keeps its pace.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from querybatch.api.auth import Principal
from querybatch.api.deps import MAX_TEAM_ID, authorize
from querybatch.api.errors import error_response
from querybatch.api.poll_budget import PollBudget
from querybatch.api.pretty import wants_pretty
from querybatch.api.routes.backfills import BACKFILL_ACTION, backfill_poll_answer
from querybatch.api.routes.backfills import MAX_ID as MAX_BACKFILL_ID
from querybatch.api.routes.batches import (
    PAGE_LIMIT,
    PAGE_OFFSET,
    batch_answer,
    batch_status_answer,
)
from querybatch.api.routes.status import query_status_answer
from querybatch.api.services import Services
from querybatch.api.sub_query_params import FILTER_PARAMS
from querybatch.cpu_meter import CpuMeter
from querybatch.errors import QueryBatchError
from querybatch.turns import current_turn

log = logging.getLogger(__name__)

# Polls answered at once. The engine runs on the same event loop, and a sub-query's way
# through it takes several turns of the loop: with every poll answered the moment it
# arrives, a turn holds as many polls as there are clients, and the engine slows with each
# of them. One at a time, a turn holds at most one poll, and clients polling flat out wait
# (idle) for their turn instead.
POLLS_AT_ONCE = 1

PREFIXES = ("/enterprise/v2", "/v2")
BATCH_PATH = "/query/batch/"
STATUS_SUFFIX = "/status"
# Ids of the shape the route takes; one out of its bounds goes to the route, which names it.
BACKFILL_PATH = re.compile(r"/teams/([0-9]{1,19})/backfills/([0-9]{1,10})")

Answer = Callable[[Request, Services, Principal], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Poll:
    """A recognised poll: the action its route is guarded by, and how to answer it."""

    action: str
    answer: Answer


class PollLane:
    """Answers plain polls itself; passes every other request on to ``app``."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._turns: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        poll = None
        if scope["type"] == "http" and scope["method"] == "GET" and _plain(scope):
            poll = _poll_of(scope)
        if poll is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what the framework would have set for the request
        if self._turns is None:
            self._turns = asyncio.Semaphore(POLLS_AT_ONCE)
        request = Request(scope, receive)
        budget: PollBudget = self.app.state.services.poll_budget
        # Only working the answer out takes a turn: sending it (a large page of rows streams)
        # must not hold up the polls behind it. Both are charged to the polls' share.
        spent = CpuMeter()
        async with self._turns:
            await budget.wait_turn()
            turn = current_turn.set(self._turns)
            try:
                response = await spent.run(self._answer(poll, request))
            finally:
                current_turn.reset(turn)
        try:
            await spent.run(response(scope, receive, send))
        finally:
            budget.charge(spent.seconds)

    async def _answer(self, poll: Poll, request: Request) -> Response:
        services: Services = self.app.state.services
        try:
            principal = await authorize(request, services, poll.action)
            return await poll.answer(request, services, principal)
        except QueryBatchError as exc:
            return error_response(request, exc)
        except Exception:
            log.exception("unhandled error on GET %s", request.scope["path"])
            return error_response(request, QueryBatchError("An unexpected error occurred."))


def _plain(scope: Scope) -> bool:
    """Neither ``pretty`` output nor a byte range (a range of a large page spools it whole)."""
    if wants_pretty(scope):
        return False
    return all(name != b"range" for name, _ in scope["headers"])


def _poll_of(scope: Scope) -> Poll | None:
    path: str = scope["path"]
    for prefix in PREFIXES:
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
            break
    if path == "/query/status":
        return Poll("get_query_status", query_status_answer)
    if not path.startswith(BATCH_PATH):
        return _backfill_poll(path)
    rest = path[len(BATCH_PATH) :]
    if rest.endswith(STATUS_SUFFIX):
        batch_id = rest[: -len(STATUS_SUFFIX)]
        page = _page_of(scope["query_string"])
        if not batch_id or "/" in batch_id or page is None:
            return None
        offset, limit = page

        async def status_page(request: Request, services: Services, caller: Principal) -> Response:
            return await batch_status_answer(request, services, caller, batch_id, offset, limit)

        return Poll("get_query_batch_status", status_page)
    if not rest or "/" in rest:
        return None

    async def batch(request: Request, services: Services, caller: Principal) -> Response:
        return await batch_answer(request, services, caller, rest)

    return Poll("get_query_batch", batch)


def _backfill_poll(path: str) -> Poll | None:
    matched = BACKFILL_PATH.fullmatch(path)
    if matched is None:
        return None
    team_id, backfill_id = int(matched[1]), int(matched[2])
    if team_id > MAX_TEAM_ID or not 1 <= backfill_id <= MAX_BACKFILL_ID:
        return None

    async def backfill(request: Request, services: Services, caller: Principal) -> Response:
        return await backfill_poll_answer(request, services, caller, team_id, backfill_id)

    return Poll(BACKFILL_ACTION, backfill)


def _page_of(query: bytes) -> tuple[int, int] | None:
    """``offset`` and ``limit`` of a status page; None unless both are plain and in bounds
    and no filter is asked for (the route then answers, and names what is wrong)."""
    offset, limit = PAGE_OFFSET.default, PAGE_LIMIT.default
    if query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name in FILTER_PARAMS:
                return None  # a filtered page is the route's
            if name not in ("offset", "limit"):
                continue
            if not value.isdigit() or len(value) > 9:
                return None
            if name == "offset":
                offset = int(value)
            else:
                limit = int(value)
    if not (PAGE_OFFSET.low <= offset <= PAGE_OFFSET.high):
        return None
    if not (PAGE_LIMIT.low <= limit <= PAGE_LIMIT.high):
        return None
    return offset, limit
