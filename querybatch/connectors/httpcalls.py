"""The HTTP side of the ``http`` connector: one GET with retries, and the pages of one account.

Retry policy: a network error or a 5xx answer is retried here, per request, ``retries`` times
with exponential backoff (``backoff``, doubled each time, +-20 % jitter), so one flaky page
does not restart a long pagination. When those tries are used up the call raises
TransientConnectorError and the engine retries the whole sub-query (``QB_RETRIES`` times with
its own backoff). A 429 is not retried here: it raises UpstreamRateLimited with the upstream's
``Retry-After`` at once, and the engine pauses the whole source for that long. 403 and 404
fail the account (:class:`AccountFailed`); any other 4xx fails the sub-query.

The auth header's value is never kept, logged or put in a message; messages name the URL
without its query string.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from querybatch.errors import ConnectorError, TransientConnectorError, UpstreamRateLimited

__all__ = ["AccountFailed", "Caller", "Pagination", "dig"]

_MISSING = object()


class Pagination(BaseModel):
    """How an endpoint splits its rows into pages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["none", "page", "offset", "cursor", "next_link"] = "none"
    param: str | None = None
    size_param: str | None = None
    size: int = Field(100, ge=1)
    start: int = 1
    cursor_path: str = "next_cursor"
    next_path: str = "next"
    max_pages: int = Field(1000, ge=1)


class AccountFailed(Exception):
    """The upstream refused one account (403, 404); other accounts may be fine."""


def dig(body: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``data.rows``, ``items.0``) of a JSON body, or None."""
    value = body
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return 1.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return 1.0


def _public(url: httpx.URL | str) -> str:
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


class Caller:
    """GETs JSON for one source with its retry policy; ``headers`` hold the credentials."""

    def __init__(
        self,
        ds_id: str,
        client: httpx.AsyncClient,
        headers: Mapping[str, str],
        retries: int,
        backoff: float,
    ) -> None:
        self.ds_id = ds_id
        self.client = client
        self.headers = dict(headers)
        self.retries = retries
        self.backoff = backoff

    async def get_json(self, url: str, params: Mapping[str, str]) -> Any:
        """The JSON body of a successful GET (see the module docstring for failures)."""
        problem = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                await asyncio.sleep(delay)
            try:
                # An empty params would drop the query string a next link carries.
                response = await self.client.get(
                    url, params=dict(params) or None, headers=self.headers
                )
            except httpx.TransportError as exc:
                problem = f"network error ({type(exc).__name__})"
                continue
            if response.status_code >= 500:
                problem = f"upstream answered {response.status_code}"
                continue
            return self._body(response)
        raise TransientConnectorError(
            f"data source {self.ds_id}: {problem} from {_public(url)} "
            f"after {self.retries + 1} tries"
        )

    def _body(self, response: httpx.Response) -> Any:
        status, where = response.status_code, _public(response.request.url)
        if status == 429:
            raise UpstreamRateLimited(
                f"data source {self.ds_id}: upstream rate limit (429) at {where}",
                _retry_after(response),
            )
        if status in (403, 404):
            raise AccountFailed(f"upstream answered {status} {response.reason_phrase}")
        if status == 401:
            raise ConnectorError(
                f"data source {self.ds_id}: upstream answered 401 at {where}; check the "
                "credentials in the variable named by auth_env"
            )
        if status >= 300:
            raise ConnectorError(f"data source {self.ds_id}: upstream answered {status} at {where}")
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(
                f"data source {self.ds_id}: the answer of {where} is not JSON"
            ) from None

    async def pages(
        self, url: str, params: Mapping[str, str], rows_path: str, paging: Pagination
    ) -> AsyncIterator[list[Any]]:
        """The rows of every page of one endpoint."""
        cursor = _Cursor(paging, url, dict(params))
        for _ in range(paging.max_pages):
            body = await self.get_json(cursor.url, cursor.query())
            rows = dig(body, rows_path)
            if rows is None:
                rows = []
            if not isinstance(rows, list):
                raise ConnectorError(
                    f"data source {self.ds_id}: rows_path {rows_path!r} is not a list in the "
                    f"answer of {_public(cursor.url)}"
                )
            yield rows
            if not cursor.advance(body, rows, self._next_link):
                return
        raise ConnectorError(
            f"data source {self.ds_id}: more than {paging.max_pages} pages at {_public(url)}"
        )

    def _next_link(self, current: str, link: Any) -> tuple[str, dict[str, str]]:
        if not link:
            return "", {}
        here = httpx.URL(current)
        target = here.join(str(link))
        # The credentials go to the configured origin only.
        if (target.scheme, target.host, target.port) != (here.scheme, here.host, here.port):
            raise ConnectorError(
                f"data source {self.ds_id}: the next link leads to another host "
                f"({target.host}); not following it with the credentials"
            )
        return str(target), {}


class _Cursor:
    """Where the next page is, for each pagination style."""

    def __init__(self, paging: Pagination, url: str, params: dict[str, str]) -> None:
        self.paging = paging
        self.url = url
        self.params = params
        self.page = paging.start
        self.offset = 0

    def query(self) -> dict[str, str]:
        paging, query = self.paging, dict(self.params)
        if paging.style == "page":
            query[paging.param or "page"] = str(self.page)
            if paging.size_param:
                query[paging.size_param] = str(paging.size)
        elif paging.style == "offset":
            query[paging.param or "offset"] = str(self.offset)
            query[paging.size_param or "limit"] = str(paging.size)
        return query

    def advance(
        self, body: Any, rows: list[Any], follow: Callable[[str, Any], tuple[str, dict[str, str]]]
    ) -> bool:
        """Move to the next page; False when this one was the last."""
        paging = self.paging
        if paging.style == "page":
            # Without a page size, the first empty page ends the list.
            self.page += 1
            return bool(rows) and not (paging.size_param and len(rows) < paging.size)
        if paging.style == "offset":
            self.offset += len(rows)
            return len(rows) >= paging.size
        if paging.style == "cursor":
            cursor = dig(body, paging.cursor_path)
            self.params[paging.param or "cursor"] = str(cursor)
            return cursor not in (None, "")
        if paging.style == "next_link":
            self.url, self.params = follow(self.url, dig(body, paging.next_path))
            return bool(self.url)
        return False
