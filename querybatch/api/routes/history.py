"""``/query/history``: the key's recent queries, newest first (also how clients test a key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from querybatch.api.answer import model_response
from querybatch.api.cursor import QUERY_BATCH_CURSORS
from querybatch.api.deps import PrincipalDep, ServicesDep
from querybatch.api.errors import request_id_of
from querybatch.api.params import documented, parse_params, request_params
from querybatch.api.routing import action_route
from querybatch.api.schemas import ERROR_RESPONSES
from querybatch.api.shapes import iso_time
from querybatch.engine.queries import HistoryEntry

router = APIRouter(tags=["Query status"])

MAX_DS_IDS = 50


class HistoryParams(BaseModel):
    """Parameters of ``/query/history``."""

    model_config = ConfigDict(extra="ignore")
    ds_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=50)]] | None,
        Field(description="only these data sources (repeated or comma-separated)"),
    ] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: Annotated[str, Field(max_length=100)] | None = None

    @field_validator("ds_ids", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            return value
        split = [part.strip() for v in values for part in v.split(",") if part.strip()]
        if len(split) > MAX_DS_IDS:
            raise ValueError(f"at most {MAX_DS_IDS} data sources")
        return split or None


class HistoryItem(BaseModel):
    """One query of the key's history."""

    schedule_id: str
    request_id: str | None
    ds_id: str
    status: str
    created_time: str | None
    start_time: str | None
    end_time: str | None
    total_rows: int | None
    cache_used: bool
    error_code: str | None


class HistoryMeta(BaseModel):
    """The answer's meta: its request id, and the cursor of the next page (null: none)."""

    request_id: str
    next_cursor: str | None
    limit: int


class HistoryAnswer(BaseModel):
    """A page of the key's recent queries."""

    meta: HistoryMeta
    data: list[HistoryItem]


def _item(entry: HistoryEntry) -> HistoryItem:
    return HistoryItem(
        schedule_id=entry.schedule_id,
        request_id=entry.request_id,
        ds_id=entry.ds_id,
        status=entry.status,
        created_time=iso_time(entry.created_at),
        start_time=iso_time(entry.start_time),
        end_time=iso_time(entry.end_time),
        total_rows=entry.total_rows,
        cache_used=entry.cache_used,
        error_code=entry.error_code,
    )


@action_route(
    router,
    "GET",
    "/query/history",
    "get_query_history",
    response_model=HistoryAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=documented(HistoryParams),
)
async def get_query_history(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The key's queries whose results live, newest first; ``meta.next_cursor`` pages on.

    A new key has none (200, empty ``data``): clients call this to test that a key works.
    """
    params = parse_params(
        HistoryParams, await request_params(request, services.settings.max_body_bytes)
    )
    after = QUERY_BATCH_CURSORS.decode(params.cursor) if params.cursor else None
    page = await services.queries.history(
        principal.caller, ds_ids=params.ds_ids, after=after, limit=params.limit
    )
    last = page.entries[-1] if page.entries else None
    next_cursor = (
        QUERY_BATCH_CURSORS.encode(last.created_at, last.batch_id) if page.more and last else None
    )
    meta = HistoryMeta(
        request_id=request_id_of(request), next_cursor=next_cursor, limit=params.limit
    )
    return model_response(HistoryAnswer(meta=meta, data=[_item(e) for e in page.entries]))
