"""Request ids, rate-limit headers and CORS on every response (a plain ASGI middleware).

The middleware does not decide whose request it is: the key may be in the body, which only
the authorization dependency reads. It hands each request a :class:`RateGate` that the
dependency charges, and charges the client address itself for requests nothing charged.
"""

from __future__ import annotations

import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from querybatch.api.ratelimit import GATE_KEY, RateGate, RateLimiter, address_bucket

UNCOUNTED_PATHS = frozenset({"/healthz", "/metrics"})


class EdgeMiddleware:
    """Gives each request an id and a rate gate, and stamps the headers on its response."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_urlsafe(24)
        gate = RateGate(
            self.limiter,
            address_bucket(scope.get("client")),
            counted=_base_path(scope["path"]) not in UNCOUNTED_PATHS,
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state[GATE_KEY] = gate

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                window = await gate.settle()
                headers = MutableHeaders(scope=message)
                headers.append("x-request-id", request_id)
                headers.append("x-ratelimit-limit", str(window.limit))
                headers.append("x-ratelimit-remaining", str(window.remaining))
                headers.append("access-control-allow-origin", "*")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _base_path(path: str) -> str:
    for prefix in ("/enterprise/v2", "/v2"):
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path
