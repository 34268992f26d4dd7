"""Response models, declared on the routes so that /openapi.json describes every answer.

The answers about queries and query batches are these models themselves: the shape
builders (``shapes``, ``batch_shapes``) fill them, :func:`model_response` writes them, and
a key they list as omitted when null is left out of the answer, not sent as null.
Other resources still send pre-built dicts, which their models document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import DataRequest


class Loose(BaseModel):
    """A documented shape that may carry more keys than listed."""

    model_config = ConfigDict(extra="allow")


# ``@type`` has a default but is always in the answer: the answer's schema requires it.
ALWAYS_TYPED = ConfigDict(json_schema_serialization_defaults_required=True)


def omitted_when_null() -> Any:
    """A field that is left out of the answer when it has no value (never sent as null)."""
    return Field(default=None, exclude_if=_is_none)


def _is_none(value: object) -> bool:
    return value is None


class RequestMeta(BaseModel):
    """Metadata included in every API response."""

    request_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ErrorDetail(BaseModel):
    """Machine- and human-readable detail for a failed request."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=100, pattern=r"^[A-Z][A-Z0-9_]*$")
    message: str = Field(max_length=255)
    description: str | None = Field(default=None, max_length=2048)


class ErrorEnvelope(BaseModel):
    """Standard envelope returned by all error (4xx/5xx) responses."""

    model_config = ConfigDict(extra="forbid")
    meta: RequestMeta
    error: ErrorDetail


class FieldMeta(BaseModel):
    """What one column of the rows holds."""

    model_config = ConfigDict(frozen=True)

    id: str
    field_id: str
    field_name: str
    field_type: str
    field_split: str
    data_type: str
    data_column: int
    visible: bool


class QueryMeta(BaseModel):
    """The query as it ran."""

    ds_id: str
    start_date: str
    end_date: str
    date_range_type: str
    ds_accounts: list[str]
    ds_segments: list[str]
    ds_users: list[str]
    fields: list[FieldMeta]
    filter: str
    order_rows: list[str]
    max_rows: int | None
    compare_type: str
    settings: dict[str, Any]


class ResultMeta(BaseModel):
    """Size and provenance of the rows."""

    total_columns: int
    total_rows: int
    run_seconds: float
    data_sampled: bool
    cache_used: bool
    cache_time: str | None


class Progress(BaseModel):
    """Sub-queries done, and in all."""

    queries_ready: int
    queries_total: int


class Workflow(BaseModel):
    """The tenant's queue: sub-queries waiting and running."""

    tasks_scheduled: int
    tasks_running: int


class QueryError(BaseModel):
    """Why a query failed or stopped."""

    code: str
    message: str
    description: str | None = omitted_when_null()


class DataMeta(BaseModel):
    """``meta`` of a data or status response: ``workflow`` and ``error`` come with a status,
    ``query``, ``result`` and ``paginate`` with rows."""

    request_id: str
    schedule_id: str
    status_code: str
    progress: Progress
    workflow: Workflow | None = omitted_when_null()
    query: QueryMeta | None = omitted_when_null()
    result: ResultMeta | None = omitted_when_null()
    paginate: dict[str, str] | None = omitted_when_null()
    error: QueryError | None = omitted_when_null()
    excluded_accounts: dict[str, str] | None = omitted_when_null()


class DataResponse(BaseModel):
    """Rows of a finished query (``data[0]`` is the header row in json), or its status."""

    meta: DataMeta
    data: list[Any]


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place (they would otherwise point
    into the schema itself, which an OpenAPI document cannot hold)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring the JSON body a route reads itself (``params.json_body``)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def query_batch_schema() -> dict[str, Any]:
    """The body of ``POST /query/batch``: the batch settings and its ``queries``."""
    schema = json_body_schema(BatchSettings)
    schema["properties"]["queries"] = {
        "type": "array",
        "minItems": 1,
        "items": json_body_schema(DataRequest),
    }
    schema["required"] = ["queries"]
    return schema


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in (
        (400, "Bad request - invalid parameters"),
        (401, "Unauthorized"),
        (403, "Forbidden by the key's role"),
        (404, "Not found (or expired: STATUS_NOT_FOUND)"),
        (429, "Too many requests"),
    )
}
# The same, with 409 for a request that conflicts with what is stored.
CONFLICT_RESPONSES = ERROR_RESPONSES | {409: ERROR_RESPONSES[400] | {"description": "Conflict"}}


class BatchProgress(BaseModel):
    """How many sub-queries of a batch are in each state (they add up to ``query_amount``)."""

    queued: int
    running: int
    success: int
    failure: int
    stopped: int


class Link(BaseModel):
    """A link to a related resource."""

    href: str


class QueryBatchLinks(BaseModel):
    """Where a batch's per-query status is."""

    status: Link


class QueryBatch(BaseModel):
    """A query batch (``@type`` query_batch)."""

    model_config = ALWAYS_TYPED
    type: Literal["query_batch"] = Field(default="query_batch", alias="@type")
    batch_id: str
    status_code: str
    schedule_time: str | None
    start_time: str | None
    end_time: str | None
    cancel_time: str | None
    # The batch's settings as it was created with them (null only for a batch that was
    # stored without them).
    description: str | None
    split_accounts_policy: str | None
    split_dates_policy: str | None
    timeout_minutes: int | None
    query_concurrency: int | None
    query_output_format: str | None
    add_exclude_account_errors: bool | None
    add_clean_data_types: bool | None
    query_amount: int
    created_time: str | None
    progress: BatchProgress
    callback_url: str | None = omitted_when_null()
    links: QueryBatchLinks


class QueryBatchResponse(BaseModel):
    """A query batch in the envelope."""

    meta: RequestMeta
    data: QueryBatch


class BatchListMeta(BaseModel):
    """``meta`` of a page of batches: ``next_cursor`` asks for the next page (null: none)."""

    request_id: str
    next_cursor: str | None
    limit: int


class BatchListResponse(BaseModel):
    """A page of query batches; ``meta.next_cursor`` asks for the next."""

    meta: BatchListMeta
    data: list[QueryBatch]


class SplitInfo(BaseModel):
    """What a sub-query covers: its data source, accounts and dates."""

    ds_id: str
    ds_accounts: list[str]
    start_date: str
    end_date: str


class BatchQueryError(BaseModel):
    """Why a sub-query failed or stopped, with the HTTP status its code stands for."""

    status: int
    code: str
    message: str
    description: str | None


class BatchQueryResult(BaseModel):
    """How many rows a successful sub-query has, and where to read them."""

    total_rows: int
    results_url: str


class BatchQueryItem(BaseModel):
    """One sub-query of a batch (``@type`` batch_query)."""

    model_config = ALWAYS_TYPED
    type: Literal["batch_query"] = Field(default="batch_query", alias="@type")
    schedule_id: str
    status_code: str
    query_start_time: str | None
    query_end_time: str | None
    split_info: SplitInfo
    error_info: BatchQueryError | None
    result_info: BatchQueryResult | None
    excluded_accounts: dict[str, str] | None = omitted_when_null()


class OffsetPage(BaseModel):
    """Which sub-queries a page holds: ``limit`` from ``offset``, of ``total``."""

    offset: int
    limit: int
    total: int


class BatchStatusMeta(BaseModel):
    """``meta`` of a batch's per-query status: the batch's status and progress, the page."""

    request_id: str
    batch_id: str
    status_code: str
    progress: BatchProgress
    paginate: OffsetPage


class BatchStatusResponse(BaseModel):
    """The per-query status of a batch, paged."""

    meta: BatchStatusMeta
    data: list[BatchQueryItem]
