"""The one exception tree of querybatch.

Every error the server can report derives from :class:`QueryBatchError` and carries the API
code and HTTP status it is answered with, so that the FastAPI edge translates any of them in
one handler and the CLI maps them to exit codes in one place::

    QueryBatchError
     ├── BadRequest              400 BAD_REQUEST
     │    ├── PayloadTooLarge    413 PAYLOAD_TOO_LARGE
     │    ├── InvalidFilter      400 INVALID_FILTER (a status page's status, account or date)
     │    └── DestinationHostRefused  400 DESTINATION_HOST_NOT_ALLOWED (outbound policy)
     ├── Unauthorized            401 UNAUTHORIZED
     ├── PermissionDenied        403 PERMISSION_ERROR
     │    └── LinkInvalid        403 LINK_INVALID (a signed link was altered or is malformed)
     │         └── LinkExpired   403 LINK_EXPIRED (a signed link is past its validity)
     ├── NotFound                404 NOT_FOUND
     │    ├── StatusNotFound     404 STATUS_NOT_FOUND
     │    └── ResultsUnavailable 404 QUERY_RESULTS_UNAVAILABLE
     ├── MethodNotAllowed        405 METHOD_NOT_ALLOWED
     ├── Conflict                409 CONFLICT_ERROR
     ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
     ├── RangeNotSatisfiable     416 RANGE_NOT_SATISFIABLE (a byte range past a download's end)
     ├── TooManyRequests         429 TOO_MANY_REQUESTS
     ├── NotOffered              501 NOT_IMPLEMENTED (a hosted-service method not offered here)
     ├── ServiceUnavailable      503 SERVICE_UNAVAILABLE
     │    └── StoreUnavailable   503 SERVICE_UNAVAILABLE (the database cannot be reached)
     ├── ConfigurationError      500 CONFIGURATION_ERROR (a bad setting or sources file)
     │    └── MissingDependency  (a setting needs an optional extra that is not installed)
     ├── ConnectorError          502 CONNECTOR_ERROR (a data source failed a query)
     │    ├── TransientConnectorError      (worth retrying with backoff)
     │    │    └── UpstreamRateLimited     (retry after the upstream's Retry-After)
     │    └── AccountErrors                (named accounts failed; the others may be fine)
     └── DestinationError        502 DESTINATION_ERROR (a warehouse or file store failed a load)
          ├── DestinationUnreachable       (could not connect or authenticate; retry later)
          └── LoadRejected                 (the rows or their columns do not fit the target)

Connector and destination errors are normally not HTTP errors: they are recorded on the
failed query (or load) and reported in its status. They carry a status and code only for
the metadata routes (fields, accounts) and connection tests, where they are asked directly.
"""

from __future__ import annotations

from collections.abc import Mapping


class QueryBatchError(Exception):
    """Base of every querybatch error: an API code, an HTTP status and a message."""

    code: str = "INTERNAL_SERVER_ERROR"
    status: int = 500

    def __init__(self, message: str, description: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.description = description


class BadRequest(QueryBatchError):
    """The request was malformed or a parameter was invalid."""

    code = "BAD_REQUEST"
    status = 400


class InvalidFilter(BadRequest):
    """A filter of a batch's status page (``status``, ``account``, ``date``) is not valid."""

    code = "INVALID_FILTER"


class PayloadTooLarge(BadRequest):
    """The request body is larger than the server accepts."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class Unauthorized(QueryBatchError):
    """No usable API key was given."""

    code = "UNAUTHORIZED"
    status = 401


class PermissionDenied(QueryBatchError):
    """The caller's role does not allow the action."""

    code = "PERMISSION_ERROR"
    status = 403


class LinkInvalid(PermissionDenied):
    """A signed (upload or download) link is malformed or its signature does not match."""

    code = "LINK_INVALID"


class LinkExpired(LinkInvalid):
    """A signed link was genuine but its validity has passed."""

    code = "LINK_EXPIRED"


class NotFound(QueryBatchError):
    """The resource does not exist, or belongs to another tenant."""

    code = "NOT_FOUND"
    status = 404


class StatusNotFound(NotFound):
    """No query with that schedule_id exists, or its results have expired."""

    code = "STATUS_NOT_FOUND"


class ResultsUnavailable(NotFound):
    """The query exists but has no results to give (yet, or at all)."""

    code = "QUERY_RESULTS_UNAVAILABLE"


class MethodNotAllowed(QueryBatchError):
    """The route exists but not for this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405


class Conflict(QueryBatchError):
    """The request conflicts with the current state (e.g. an idempotency key reused)."""

    code = "CONFLICT_ERROR"
    status = 409


class UnsupportedMediaType(QueryBatchError):
    """The request body is in a content type the route does not read."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class RangeNotSatisfiable(QueryBatchError):
    """A download's byte range starts at or beyond its end (``length`` bytes)."""

    code = "RANGE_NOT_SATISFIABLE"
    status = 416

    def __init__(self, length: int) -> None:
        super().__init__(
            "Range not satisfiable", f"The download holds {length} bytes (0 to {length - 1})."
        )
        self.length = length


class TooManyRequests(QueryBatchError):
    """The caller's hourly request window is used up."""

    code = "TOO_MANY_REQUESTS"
    status = 429

    def __init__(self, message: str, retry_after: int, description: str | None = None) -> None:
        super().__init__(message, description)
        self.retry_after = retry_after


class NotOffered(QueryBatchError):
    """A method of the hosted service's API that a self-hosted server does not offer."""

    code = "NOT_IMPLEMENTED"
    status = 501


class ServiceUnavailable(QueryBatchError):
    """The server cannot answer now (starting, stopping, or a dependency is down)."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class StoreUnavailable(ServiceUnavailable):
    """The database could not be reached or refused the operation."""


class ConfigurationError(QueryBatchError):
    """A setting, the sources file or the environment is wrong; raised at start-up."""

    code = "CONFIGURATION_ERROR"
    status = 500


class MissingDependency(ConfigurationError):
    """A setting needs an optional dependency that is not installed; says which extra has it.

    The message is one line ending in the exact install command, e.g. ``QB_DATABASE_URL is a
    PostgreSQL URL, which needs psycopg: pip install 'querybatch[postgres]'``.
    """

    def __init__(self, needed_by: str, module: str, extra: str) -> None:
        super().__init__(f"{needed_by}, which needs {module}: pip install 'querybatch[{extra}]'")
        self.module = module
        self.extra = extra


class ConnectorError(QueryBatchError):
    """A data source could not answer a query."""

    code = "CONNECTOR_ERROR"
    status = 502


class TransientConnectorError(ConnectorError):
    """A data source failed in a way that a later attempt may not (timeouts, 5xx)."""

    code = "CONNECTOR_TRANSIENT_ERROR"


class UpstreamRateLimited(TransientConnectorError):
    """The upstream asked us to slow down; retry no sooner than ``retry_after`` seconds."""

    code = "UPSTREAM_RATE_LIMITED"

    def __init__(self, message: str, retry_after: float, description: str | None = None) -> None:
        super().__init__(message, description)
        self.retry_after = retry_after


class AccountErrors(ConnectorError):
    """Some accounts of a query failed; ``failures`` maps each account id to its reason."""

    code = "ACCOUNT_ERROR"

    def __init__(self, failures: Mapping[str, str]) -> None:
        names = ", ".join(sorted(failures))
        super().__init__(f"Data source failed for account(s): {names}")
        self.failures = dict(failures)


class DestinationError(QueryBatchError):
    """A destination (warehouse or file store) failed to connect or to load."""

    code = "DESTINATION_ERROR"
    status = 502


class DestinationUnreachable(DestinationError):
    """The destination could not be reached or refused the credentials; a later try may work."""

    code = "DESTINATION_UNREACHABLE"


class LoadRejected(DestinationError):
    """The destination refused the rows: a column, a value or a table that does not fit."""

    code = "LOAD_REJECTED"


class DestinationHostRefused(BadRequest):
    """A destination names a host the operator's outbound policy does not let it reach."""

    code = "DESTINATION_HOST_NOT_ALLOWED"
