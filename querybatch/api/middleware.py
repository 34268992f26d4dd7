"""Request ids, rate-limit headers and CORS on every response (a plain ASGI middleware)."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import parse_qs

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from querybatch.api.errors import error_response
from querybatch.api.ratelimit import RateLimiter
from querybatch.errors import TooManyRequests

UNCOUNTED_PATHS = frozenset({"/healthz", "/metrics"})


def credential_of(scope: Scope) -> str | None:
    """The API key a request carries in its header or query string, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
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


class EdgeMiddleware:
    """Gives each request an id, counts it against its caller's window, and stamps headers."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["request_id"] = request_id
        window = await self.limiter.hit(
            _bucket(scope), count=_base_path(scope["path"]) not in UNCOUNTED_PATHS
        )
        extra = [
            (b"x-request-id", request_id.encode()),
            (b"x-ratelimit-limit", str(window.limit).encode()),
            (b"x-ratelimit-remaining", str(window.remaining).encode()),
            (b"access-control-allow-origin", b"*"),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.append(name.decode(), value.decode())
            await send(message)

        if not window.allowed:
            exc = TooManyRequests(
                "Rate limit exceeded. Retry later.",
                retry_after=window.reset_after,
                description=f"At most {window.limit} requests per hour are allowed for this key.",
            )
            response = error_response(Request(scope), exc)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _bucket(scope: Scope) -> str:
    credential = credential_of(scope)
    if credential:
        return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def _base_path(path: str) -> str:
    for prefix in ("/enterprise/v2", "/v2"):
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path
