"""``pretty=true``: JSON answers indented for people reading them (a plain ASGI middleware).

Clients of the Supermetrics API pass ``pretty=true`` (in the query string) to read answers
by eye. Indenting needs the whole document, so an answer is held back until it is complete,
then indented (off the event loop when large). Memory stays bounded: an answer larger than
``MAX_PRETTY_BYTES`` is sent as it is, compact, once that much has been seen.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_PRETTY_BYTES = 16 * 1024 * 1024
OFF_LOOP_BYTES = 256 * 1024
TRUE = frozenset({"1", "true", "yes", "on"})


def wants_pretty(scope: Scope) -> bool:
    """Whether the request's query string asks for ``pretty`` output."""
    query = scope.get("query_string", b"")
    if b"pretty" not in query:
        return False
    params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return any(name == "pretty" and value.strip().lower() in TRUE for name, value in params)


def indent(body: bytes) -> bytes:
    """``body`` indented by two spaces; as it was when it is not a JSON document."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    except orjson.JSONDecodeError:
        return body


class PrettyJsonMiddleware:
    """Indents the JSON answers of requests that ask for ``pretty`` output."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not wants_pretty(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []
        held = 0
        passing = False

        async def hold(message: Message) -> None:
            nonlocal start, held, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(scope=message).get("content-type", "")
                if not content_type.startswith("application/json"):
                    passing = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            parts.append(message.get("body", b""))
            held += len(parts[-1])
            if held > MAX_PRETTY_BYTES:
                # Too large to hold: send what came so far, and the rest as it comes.
                passing = True
                await send(start)
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"".join(parts),
                        "more_body": message.get("more_body", False),
                    }
                )
                return
            if message.get("more_body", False):
                return
            whole = b"".join(parts)
            pretty = (
                await asyncio.to_thread(indent, whole) if held > OFF_LOOP_BYTES else indent(whole)
            )
            headers = MutableHeaders(scope=start)
            headers["content-length"] = str(len(pretty))
            await send(start)
            await send({"type": "http.response.body", "body": pretty, "more_body": False})

        await self.app(scope, receive, hold)
