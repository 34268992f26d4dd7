"""FastAPI dependencies: the app's services and the authorised caller of each route."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import Depends, Path, Request
from starlette.types import Scope

from querybatch.api.auth import Principal, key_of_authorization, require
from querybatch.api.params import body_params
from querybatch.api.ratelimit import gate_of
from querybatch.api.services import Services
from querybatch.errors import Unauthorized


async def get_services(request: Request) -> Services:
    """The services the app was built with (async: a plain def would cost a thread hop)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def credential_of(scope: Scope) -> str | None:
    """The API key a request carries in its header or query string (``api_key`` or ``json=``).

    The ``Authorization`` header wins when present, even if it holds no usable key.
    """
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return key_of_authorization(value.decode("latin-1"))
    query = scope.get("query_string", b"")
    if b"api_key" not in query:
        return None
    params = parse_qs(query.decode("latin-1"))
    if params.get("api_key"):
        return str(params["api_key"][0])
    for raw in params.get("json", ()):
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        key = decoded.get("api_key") if isinstance(decoded, dict) else None
        return key if isinstance(key, str) else None
    return None


async def presented_key(request: Request, services: Services) -> str | None:
    """The API key of a request, wherever it is: header, query string, or a /query/ body."""
    secret = credential_of(request.scope)
    if secret is None and request.method == "POST" and request.url.path.find("/query/") >= 0:
        body: dict[str, Any] = await body_params(request, services.settings.max_body_bytes)
        key = body.get("api_key")
        secret = key if isinstance(key, str) else None
    return secret


class Authorize:
    """The dependency that authenticates a request and checks its role allows ``action``.

    Every route but health, metrics, docs and signed links depends on one (declared with
    :func:`~querybatch.api.routing.action_route`), which keeps the caller it let through on
    ``request.state`` for :data:`PrincipalDep`. The action name is what roles list, and a
    test walks the routes to make sure none lacks it. It is also where the request is
    charged to its rate-limit bucket, because only here is the key known wherever it was
    sent: an authenticated request counts to its key, one whose credential is missing or
    wrong to its client address (429 before 401 once that is used up, so guessing keys is
    limited too).
    """

    def __init__(self, action: str) -> None:
        self.action = action

    async def __call__(self, request: Request) -> None:
        # The services are fetched here rather than declared: each dependency FastAPI solves
        # is a measurable share of a status poll.
        request.state.principal = await authorize(request, await get_services(request), self.action)


async def authorize(request: Request, services: Services, action: str) -> Principal:
    """The caller of ``request`` if its key is valid, within its rate limit and allowed
    ``action``; the request is charged to its key (or, unauthenticated, its address)."""
    gate = gate_of(request.scope)
    try:
        principal = await services.keys.authenticate(await presented_key(request, services))
    except Unauthorized:
        await gate.charge_address()
        raise
    await gate.charge_key(principal.key.id)
    require(principal, action)
    return principal


async def authorized_principal(request: Request) -> Principal:
    """The caller the route's :class:`Authorize` dependency let through."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        # A programming error, not the caller's: the route was declared without an action.
        raise RuntimeError(f"{request.method} {request.url.path}: no Authorize dependency ran")
    return principal


PrincipalDep = Annotated[Principal, Depends(authorized_principal)]

# A team's id in a path (``/teams/{team_id}/...``): the tenant's numeric id.
MAX_TEAM_ID = 2**63 - 1
TeamId = Annotated[int, Path(ge=0, le=MAX_TEAM_ID)]
