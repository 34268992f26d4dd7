"""FastAPI dependencies: the app's services and the authorised caller of each route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from querybatch.api.auth import Principal, require
from querybatch.api.middleware import credential_of
from querybatch.api.params import body_params
from querybatch.api.services import Services


async def get_services(request: Request) -> Services:
    """The services the app was built with (async: a plain def would cost a thread hop)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class Authorize:
    """The dependency that authenticates a request and checks its role allows ``action``.

    Every route but health, metrics, docs and signed links depends on one; the action name
    is what roles list, and a test walks the routes to make sure none lacks it.
    """

    def __init__(self, action: str) -> None:
        self.action = action

    async def __call__(self, request: Request, services: ServicesDep) -> Principal:
        secret = credential_of(request.scope)
        if secret is None and request.method == "POST" and request.url.path.find("/query/") >= 0:
            body: dict[str, Any] = await body_params(request, services.settings.max_body_bytes)
            key = body.get("api_key")
            secret = key if isinstance(key, str) else None
        principal = await services.keys.authenticate(secret)
        require(principal, self.action)
        return principal
