"""Errors as clients see them: the envelope of the seeds, or RFC 9457 problem details.

Every error leaves through :func:`error_response`, whichever layer raised it, so the shape,
the request id and the headers are the same everywhere.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from querybatch.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    QueryBatchError,
    RangeNotSatisfiable,
    TooManyRequests,
    Unauthorized,
)

log = logging.getLogger(__name__)

_PROBLEM_DETAIL_UNSAFE = re.compile(r"[^A-Za-z0-9\s.,\-]")


def request_id_of(request: Request) -> str:
    """The id the request-id middleware gave this request."""
    rid: str = request.scope.get("state", {}).get("request_id", "")
    return rid or "unknown-request"


def wants_problem_json(request: Request) -> bool:
    """Whether the client asked for RFC 9457 problem details."""
    return "application/problem+json" in request.headers.get("accept", "")


def error_response(request: Request, exc: QueryBatchError) -> Response:
    """The response for ``exc``: envelope or problem details, with the right headers."""
    request_id = request_id_of(request)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="querybatch"'
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.length}"
    if wants_problem_json(request):
        title = HTTPStatus(exc.status).phrase
        problem: dict[str, object] = {
            "type": f"urn:querybatch:problem:{exc.code.lower()}",
            "title": _PROBLEM_DETAIL_UNSAFE.sub("", title),
            "status": exc.status,
            "detail": " ".join(_PROBLEM_DETAIL_UNSAFE.sub(" ", exc.message).split())[:1000],
            "instance": request.url.path,
            "code": exc.code,
            "request_id": request_id,
        }
        if exc.description:
            problem["description"] = exc.description[:2048]
        return Response(
            orjson.dumps(problem),
            status_code=exc.status,
            headers=headers,
            media_type="application/problem+json",
        )
    error: dict[str, str] = {"code": exc.code, "message": exc.message[:255] or exc.code}
    if exc.description:
        error["description"] = exc.description[:2048]
    body = {"meta": {"request_id": request_id}, "error": error}
    return Response(
        orjson.dumps(body), status_code=exc.status, headers=headers, media_type="application/json"
    )


def validation_error(exc: RequestValidationError) -> BadRequest:
    """FastAPI's parameter errors as one BAD_REQUEST naming the first bad parameter."""
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
    name = ".".join(location) or "request"
    return BadRequest(f"Invalid parameter '{name}'", str(first.get("msg", "invalid value")))


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception the app can raise through :func:`error_response`."""

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QueryBatchError)
        return error_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        mapped: QueryBatchError
        if exc.status_code == 404:
            mapped = NotFound(f"No route {request.method} {request.url.path}")
        elif exc.status_code == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            mapped = QueryBatchError(str(exc.detail))
            mapped.status = exc.status_code
            mapped.code = HTTPStatus(exc.status_code).name
        return error_response(request, mapped)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, QueryBatchError("An unexpected error occurred."))

    app.add_exception_handler(QueryBatchError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
