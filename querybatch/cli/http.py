"""A small client of a querybatch server, for the CLI's client commands."""

from __future__ import annotations

import os
from typing import Any

import httpx
import orjson

from querybatch.errors import QueryBatchError, ServiceUnavailable

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(QueryBatchError):
    """An error the server answered with, carrying its status and code."""

    def __init__(self, status: int, code: str, message: str, description: str | None) -> None:
        super().__init__(message, description)
        self.status = status
        self.code = code


class ApiClient:
    """Talks to a server at ``url`` with ``key`` (defaults: QB_URL, QB_API_KEY)."""

    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 60) -> None:
        self.url = (url or os.environ.get("QB_URL") or DEFAULT_URL).rstrip("/")
        key = key or os.environ.get("QB_API_KEY") or os.environ.get("QB_ADMIN_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; an error answer raises ApiError, no answer ServiceUnavailable."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Cannot reach the server at {self.url}", str(exc)) from exc
        if response.status_code >= 400:
            raise api_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request and decode its JSON answer."""
        body: dict[str, Any] = orjson.loads(self.request(method, path, **kwargs).content)
        return body


def api_error(response: httpx.Response) -> ApiError:
    """The error a (read) error response carries."""
    try:
        error = orjson.loads(response.content).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    return ApiError(
        response.status_code,
        error.get("code", "HTTP_ERROR"),
        error.get("message") or f"HTTP {response.status_code}",
        error.get("description"),
    )
