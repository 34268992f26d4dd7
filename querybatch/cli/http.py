"""A small client of a querybatch server, for the CLI's client commands."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from querybatch.errors import BadRequest, QueryBatchError, ServiceUnavailable
from querybatch.settings import Settings

MAX_WAIT_SECONDS = 60.0  # the longest a poller waits, whatever the server says

# The server's own defaults, so that a client with no settings finds a server with none.
DEFAULT_HOST = str(Settings.model_fields["host"].default)
DEFAULT_PORT = int(Settings.model_fields["port"].default)
# A server listening on every address is reached on the loopback one.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": DEFAULT_HOST}


class ApiError(QueryBatchError):
    """An error the server answered with, carrying its status and code."""

    def __init__(self, status: int, code: str, message: str, description: str | None) -> None:
        super().__init__(message, description)
        self.status = status
        self.code = code


def server_url(url: str | None = None) -> str:
    """The server to talk to: ``url``, else QB_URL, else QB_HOST and QB_PORT as ``serve``
    reads them (127.0.0.1 and 8080 by default)."""
    chosen = url or os.environ.get("QB_URL")
    if chosen:
        return chosen.rstrip("/")
    host = os.environ.get("QB_HOST", DEFAULT_HOST).strip()
    host = _ANY_ADDRESS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    port = os.environ.get("QB_PORT", "").strip() or str(DEFAULT_PORT)
    if not port.isdigit() or int(port) > 65535:
        raise BadRequest(f"QB_PORT is not a port number: {port[:20]!r}")
    return f"http://{host}:{int(port)}"


def _key_from(key: str | None) -> tuple[str | None, str | None]:
    """The key to send and where it came from (for the message when it is refused)."""
    if key:
        return key, "--key"
    for name in ("QB_API_KEY", "QB_ADMIN_KEY"):
        if os.environ.get(name):
            return os.environ[name], name
    return None, None


class ApiClient:
    """Talks to a server at ``url`` with ``key`` (defaults: QB_URL or QB_HOST and QB_PORT,
    QB_API_KEY)."""

    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 60) -> None:
        self.url = server_url(url)
        key, self.key_source = _key_from(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # The hook sees every answer, streamed ones too, so a refused key is always explained.
        self.http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            event_hooks={"response": [self._refused]},
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _refused(self, response: httpx.Response) -> None:
        if response.status_code != 401:
            return
        response.read()
        error = api_error(response)
        if self.key_source is None:
            error.message, error.description = "no API key: set QB_API_KEY or pass --key", None
        else:
            error.message, error.description = (
                f"the API key from {self.key_source} was refused",
                error.description or error.message,
            )
        raise error

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; an error answer raises ApiError, no answer ServiceUnavailable."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"Cannot reach the server at {self.url}",
                f"{exc}; name it with --url, QB_URL, or QB_HOST and QB_PORT",
            ) from exc
        if response.status_code >= 400:
            raise api_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request and decode its JSON answer."""
        body: dict[str, Any] = orjson.loads(self.request(method, path, **kwargs).content)
        return body

    def poll(self, path: str, previous: Polled | None = None) -> Polled:
        """``GET path`` again: the server answers 304 (and the previous body stands) when
        nothing changed since ``previous``, and says when to ask next."""
        headers = {"If-None-Match": previous.etag} if previous and previous.etag else {}
        response = self.request("GET", path, headers=headers)
        hint = _seconds(response.headers.get("retry-after"))
        if response.status_code == 304 and previous is not None:
            return Polled(previous.body, previous.etag, hint)
        return Polled(orjson.loads(response.content), response.headers.get("etag"), hint)


@dataclass(frozen=True, slots=True)
class Polled:
    """A polled answer: its JSON, its ETag, and the server's ``Retry-After`` hint."""

    body: dict[str, Any]
    etag: str | None = None
    retry_after: float | None = None

    def wait(self, default: float) -> float:
        """Seconds until the next poll: the server's hint (at most ``MAX_WAIT_SECONDS``),
        else ``default``."""
        if self.retry_after is None:
            return default
        return min(self.retry_after, MAX_WAIT_SECONDS)


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` of delay seconds (the HTTP-date form is not sent by querybatch)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


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
