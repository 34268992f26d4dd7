"""Reading request parameters the three ways clients send them.

Flat query parameters (a list repeated or comma-separated), one ``json=`` parameter holding
an object, or a body (JSON or form). Later sources win: query string, then ``json=``, then
the body. Unknown keys are kept; the models that read them ignore what they do not know.

JSON is nested at most :data:`MAX_JSON_DEPTH` levels (checked without recursion), and a
body larger than :data:`OFF_LOOP_BYTES` is decoded on a worker thread, so that no body, up
to the size limit, holds up the event loop.
"""

from __future__ import annotations

import asyncio
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from querybatch.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

T = TypeVar("T")

BODY_KEY = "qb_body"
MAX_JSON_DEPTH = 32
OFF_LOOP_BYTES = 256 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes before it is all read."""
    cached: bytes | None = request.scope.get("state", {}).get(BODY_KEY)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        parts.append(part)
    body = b"".join(parts)
    request.scope.setdefault("state", {})[BODY_KEY] = body
    return body


def parse_json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Decode a JSON object, or raise BAD_REQUEST saying where it came from."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON", str(exc)) from exc
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    if nesting_exceeds(value, MAX_JSON_DEPTH):
        raise BadRequest(
            f"{what} is nested too deeply",
            f"Objects and arrays may be nested at most {MAX_JSON_DEPTH} levels.",
        )
    return value


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether objects/arrays in ``value`` nest deeper than ``limit`` (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def _off_loop_if_large(size: int, parse: Callable[[], T]) -> T:
    """Run ``parse`` here when the input is small, on a worker thread when it is not."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse)
    return parse()


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object (routes whose body is a document, not parameters)."""
    body = await read_body(request, limit)
    return await _off_loop_if_large(len(body), lambda: parse_json_object(body, "The request body"))


def _flat(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in pairs:
        key = key.removesuffix("[]")
        if key in params:
            existing = params[key]
            params[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            params[key] = value
    return params


async def body_params(request: Request, limit: int) -> dict[str, Any]:
    """The parameters in the body: a JSON object or a form; empty for an empty body."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        return await _off_loop_if_large(
            len(body), lambda: parse_json_object(body, "The request body")
        )
    if content_type == "application/x-www-form-urlencoded":
        return await _off_loop_if_large(len(body), lambda: _form_params(body))
    raise UnsupportedMediaType(
        f"Cannot read a body of type {content_type}",
        "Send application/json or application/x-www-form-urlencoded.",
    )


def _form_params(body: bytes) -> dict[str, Any]:
    params = _flat(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if "json" in params:
        raw_json = params.pop("json")
        if isinstance(raw_json, list):
            raise BadRequest("The json parameter was given more than once")
        params.update(parse_json_object(raw_json, "The json parameter"))
    return params


async def request_params(request: Request, limit: int) -> dict[str, Any]:
    """All parameters of a request, merged: query string, then ``json=``, then the body."""
    params = _flat(
        parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
    )
    raw_json = params.pop("json", None)
    if raw_json is not None:
        if isinstance(raw_json, list):
            raise BadRequest("The json parameter was given more than once")
        params.update(parse_json_object(raw_json, "The json parameter"))
    if request.method in ("POST", "PUT", "PATCH"):
        params.update(await body_params(request, limit))
    return params


M = TypeVar("M", bound=BaseModel)


# A client's value shown in an error: a few levels and characters, whatever its depth or size.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 200, 200, 60


def bad_parameter(
    exc: ValidationError, prefix: str = "", *, whole: str = "request", show_value: bool = True
) -> BadRequest:
    """A pydantic error as a BAD_REQUEST that names the parameter and what is wrong (and the
    value given, unless ``show_value`` is false: a body may carry secrets)."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or whole
    value = first.get("input") if show_value else None
    shown = _SHOWN.repr(value) if value is not None and not isinstance(value, dict) else ""
    return BadRequest(
        f"{prefix}Invalid value for parameter '{name}'",
        f"{first['msg']}" + (f" (got {shown})" if shown else ""),
    )


def parse_params(model: type[M], params: dict[str, Any]) -> M:
    """Validate parameters with ``model``; the first bad one becomes a BAD_REQUEST."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise bad_parameter(exc) from exc


async def json_model(request: Request, limit: int, model: type[M]) -> M:
    """A JSON object body validated with ``model``; its first bad field becomes a BAD_REQUEST
    that never repeats the value given (bodies such as a destination's carry secrets)."""
    body = await json_body(request, limit)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise bad_parameter(exc, whole="body", show_value=False) from None


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` listing a model's fields as query parameters (also accepted in
    ``json=`` or a body, which OpenAPI cannot say for each field)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
        }
        for name, prop in schema.get("properties", {}).items()
    ]
    parameters.append(
        {
            "name": "json",
            "in": "query",
            "required": False,
            "description": "All parameters as one JSON object",
            "schema": {"type": "string"},
        }
    )
    return {"parameters": parameters}
