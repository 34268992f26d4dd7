"""Response models, declared on the routes so that /openapi.json describes every answer.

Hot routes return ready-made responses (streamed rows, pre-encoded JSON); these models are
the documentation of those shapes and the validators the tests hold responses against.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import DataRequest


class Loose(BaseModel):
    """A documented shape that may carry more keys than listed."""

    model_config = ConfigDict(extra="allow")


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


class FieldMeta(Loose):
    """What one column of the rows holds."""

    id: str
    field_id: str
    field_name: str
    field_type: str
    field_split: str
    data_type: str
    data_column: int
    visible: bool


class QueryMeta(Loose):
    """The query as it ran."""

    start_date: str
    end_date: str
    ds_accounts: list[str]
    ds_segments: list[str]
    fields: list[FieldMeta]
    settings: dict[str, Any]


class ResultMeta(Loose):
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


class DataMeta(Loose):
    """``meta`` of a data or status response."""

    request_id: str
    schedule_id: str
    status_code: str
    progress: Progress | None = None
    workflow: Workflow | None = None
    query: QueryMeta | None = None
    result: ResultMeta | None = None
    paginate: dict[str, str] | None = None
    error: ErrorDetail | None = None


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


class QueryBatch(Loose):
    """A query batch (``@type`` query_batch)."""

    batch_id: str
    status_code: str
    schedule_time: str | None
    start_time: str | None
    end_time: str | None
    cancel_time: str | None
    description: str
    split_accounts_policy: str
    split_dates_policy: str
    timeout_minutes: int
    query_amount: int
    query_concurrency: int
    query_output_format: str
    add_exclude_account_errors: bool
    add_clean_data_types: bool
    links: dict[str, dict[str, str]]


class QueryBatchResponse(BaseModel):
    """A query batch in the envelope."""

    meta: RequestMeta
    data: QueryBatch


class BatchListResponse(BaseModel):
    """A page of query batches; ``meta.next_cursor`` asks for the next."""

    meta: Loose
    data: list[QueryBatch]


class BatchQueryItem(Loose):
    """One sub-query of a batch (``@type`` batch_query)."""

    schedule_id: str
    status_code: str
    query_start_time: str | None
    query_end_time: str | None
    split_info: dict[str, Any]
    error_info: dict[str, Any] | None
    result_info: dict[str, Any] | None


class BatchStatusResponse(BaseModel):
    """The per-query status of a batch, paged."""

    meta: Loose
    data: list[BatchQueryItem]
