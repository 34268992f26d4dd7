"""Answering with a query: its rows (a page, in a format) when it succeeded, else its status."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import URL
from starlette.responses import Response

from querybatch.api import shapes
from querybatch.api.errors import request_id_of
from querybatch.api.formats import MEDIA_TYPES, rows_stream
from querybatch.api.poll import PLACEHOLDER, PollAnswer
from querybatch.api.ranges import bytes_response, generated_response, strong_etag
from querybatch.api.schemas import DataResponse, RequestMeta
from querybatch.api.services import Services
from querybatch.domain.poll_hint import retry_after
from querybatch.engine.queries import QueryAnswer, QueryRows, QueryState
from querybatch.engine.result_rows import CHUNK_ROWS, Columns


@dataclass(frozen=True, slots=True)
class Page:
    """Which rows to show: ``offset`` to ``end - 1`` (``end`` None: to the last row)."""

    offset: int = 0
    end: int | None = None
    names: tuple[str, str] = ("offset_start", "offset_end")

    @classmethod
    def inclusive(cls, offset_start: int, offset_end: int | None) -> Page:
        """The ``offset_start``/``offset_end`` form, whose end row is included."""
        return cls(offset_start, None if offset_end is None else offset_end + 1)

    @property
    def size(self) -> int:
        """How many rows the page asks for (0: to the last row)."""
        return 0 if self.end is None else max(self.end - self.offset, 0)

    def bounds(self, total: int) -> tuple[int, int]:
        """The concrete row range within a result of ``total`` rows."""
        end = total if self.end is None else min(self.end, total)
        return min(self.offset, total), max(min(self.offset, total), end)


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON response encoded with orjson (no model validation on hot paths)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def model_response(
    answer: BaseModel, status: int = 200, *, exclude_unset: bool = False
) -> Response:
    """A response model as the answer: its fields in order, keys it omits left out.

    With ``exclude_unset`` only the keys its builder set are sent (a bulk batch shows
    ``download`` only when asked for it). pydantic writes JSON as orjson does (compact,
    UTF-8, the same float digits), so an answer a model writes is byte for byte the one a
    dict of the same keys gave.
    """
    body = answer.model_dump_json(by_alias=True, exclude_unset=exclude_unset)
    return Response(body, status_code=status, media_type="application/json")


def request_meta(request: Request) -> RequestMeta:
    """The ``meta`` every answer carries: the request's id."""
    return RequestMeta(request_id=request_id_of(request))


def public_base(request: Request, services: Services) -> str:
    """The absolute base URL of this server as the client reached it."""
    if services.settings.public_url:
        return services.settings.public_url.rstrip("/")
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return _base_url(scope.get("scheme", "http"), host, tuple(server) if server else None, root)


@lru_cache(maxsize=256)
def _base_url(scheme: str, host: bytes | None, server: tuple[str, int] | None, root: str) -> str:
    """``request.base_url`` without its trailing slash, worked out as the framework does but
    once per way of reaching the server: every link of every poll answer starts with it."""
    scope = {
        "scheme": scheme,
        "server": server,
        "path": root if root.endswith("/") else root + "/",
        "root_path": root,
        "query_string": b"",
        "headers": [] if host is None else [(b"host", host)],
    }
    return str(URL(scope=scope)).rstrip("/")


def route_prefix(request: Request) -> str:
    """The prefix (``""``, ``/v2`` or ``/enterprise/v2``) the request came in under."""
    path: str = request.scope["path"]
    for prefix in ("/enterprise/v2", "/v2"):
        if path.startswith(prefix + "/"):
            return prefix
    return ""


async def query_response(
    services: Services,
    request: Request,
    answer: QueryAnswer,
    fmt: str,
    page: Page,
    link_path: str,
) -> Response:
    """A query's rows (a page in ``fmt``) when the answer holds them, else its status."""
    if isinstance(answer, QueryRows):
        return await rows_response(services, request, answer, fmt, page, link_path)
    return status_response(services, request, answer)


def status_response(services: Services, request: Request, answer: QueryState) -> Response:
    """The status shape: status code, progress, workflow counters, empty data; built once
    per state of the query (a poll answer), with when to ask again while it runs."""
    query = answer.query
    hint = None if query.status.is_final else retry_after(query.start_time, None, time.time())

    def build() -> PollAnswer:
        meta = shapes.status_meta(PLACEHOLDER, query, answer.workflow)
        return PollAnswer.of(DataResponse(meta=meta, data=[]), hint)

    key = ("query", query.account, query.id)
    # All the answer shows of the query: each poll reads it anew, and most find it as it was.
    shown = (query.status, query.error, query.excluded_accounts)
    return services.answers.answer(key, shown, (answer.workflow, hint), build).response(request)


async def rows_response(
    services: Services,
    request: Request,
    rows: QueryRows,
    fmt: str,
    page: Page,
    link_path: str,
) -> Response:
    """A page of a successful query's rows in ``fmt``, with full metadata and page links."""
    query, infos = rows.query, rows.fields
    fields = list(query.spec.fields)
    total = rows.total
    offset, end = page.bounds(total)
    base = public_base(request, services) + route_prefix(request) + link_path
    links = shapes.page_links(
        base,
        {"schedule_id": query.schedule_id},
        offset,
        None if page.end is None else end,
        total,
        page.names,
        requested=page.size,
    )
    small = end - offset <= CHUNK_ROWS
    # A small page of JSON is a poll answer: written with a placeholder for the request id,
    # so that it has an ETag (a client polling it gets 304 while it holds it).
    polled = small and fmt in ("json", "keyjson") and "range" not in request.headers
    meta = shapes.rows_meta(PLACEHOLDER if polled else request_id_of(request), query, infos, links)
    settings = query.spec.settings
    body = rows_stream(
        fmt,
        meta,
        Columns.of(fields, infos),
        rows.read(offset, end),
        clean=query.batch_settings.add_clean_data_types,
        no_headers=_truthy(settings.get("no_headers")),
        escape_formulas=services.settings.csv_escape_formulas,
    )
    headers = {"X-Schedule-Id": query.schedule_id, "X-Total-Rows": str(total)}
    etag = _page_etag(rows, fmt, (offset, end), settings, services.settings.csv_escape_formulas)
    if small:
        # A small page is cheaper sent whole than streamed piece by piece.
        whole = b"".join([part async for part in body])
        if polled:
            answer = PollAnswer.split(whole, None)
            return answer.response(request, headers=headers, media_type=MEDIA_TYPES[fmt])
        return bytes_response(request, whole, etag, MEDIA_TYPES[fmt], headers)
    spool_limit = services.settings.range_spool_bytes
    return await generated_response(request, etag, body, MEDIA_TYPES[fmt], headers, spool_limit)


def _page_etag(
    rows: QueryRows,
    fmt: str,
    bounds: tuple[int, int],
    settings: dict[str, Any],
    escape_formulas: bool,
) -> str | None:
    """A strong ETag of a page whose bytes are the same every time; None for json and
    keyjson, whose meta carries the request's id."""
    result = rows.query.result
    if fmt in ("json", "keyjson") or result is None:
        return None
    return strong_etag(
        "data",
        rows.query.schedule_id,
        result.id,
        fmt,
        bounds,
        _truthy(settings.get("no_headers")),
        rows.query.batch_settings.add_clean_data_types,
        escape_formulas,
        [(f.field_id, f.field_name, f.data_type) for f in rows.fields],
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
