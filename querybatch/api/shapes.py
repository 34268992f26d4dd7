"""The ``meta`` blocks of query responses, shaped as the official SDK's models read them.

Each builder returns its response model of ``schemas``, which both documents the shape in
/openapi.json and writes the answer (:func:`querybatch.api.answer.model_response`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from querybatch.api.schemas import (
    DataMeta,
    FieldMeta,
    Progress,
    QueryError,
    QueryMeta,
    ResultMeta,
    Workflow,
)
from querybatch.domain.fields import FieldInfo
from querybatch.domain.status import QueryStatus
from querybatch.engine.queries import QueryRecord


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC timestamp (what clients parse)."""
    if epoch is None:
        return None
    if 0.0 <= epoch < _SECONDS_KEPT_UNTIL:
        # What datetime.fromtimestamp does (the fraction rounded half to even into
        # microseconds), with the text of the whole second kept: a status page writes two
        # times per item, and the times of neighbouring sub-queries share their seconds.
        fraction, whole = math.modf(epoch)
        seconds, micros = int(whole), round(fraction * 1e6)
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        return f"{_second_text(seconds)}.{micros // 1000:03d}Z"
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


_SECONDS_KEPT_UNTIL = 253_402_300_800.0  # 10000-01-01: beyond it, datetime raises


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a whole second since the epoch, in UTC."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")[:-6]


def fields_meta(field_ids: list[str], infos: list[FieldInfo]) -> tuple[FieldMeta, ...]:
    """``meta.query.fields``: what each column of a row holds."""
    return _fields_meta(tuple(field_ids), tuple(infos))


# Polling asks for the same few field lists again and again: describe each list once.
@lru_cache(maxsize=1024)
def _fields_meta(field_ids: tuple[str, ...], infos: tuple[FieldInfo, ...]) -> tuple[FieldMeta, ...]:
    by_id = {f.field_id: f for f in infos}
    described = []
    for column, field_id in enumerate(field_ids):
        info = by_id.get(field_id)
        described.append(
            FieldMeta(
                id=field_id,
                field_id=field_id,
                field_name=info.field_name if info else field_id,
                field_type=info.field_type if info else "dim",
                field_split="row" if info is None or not info.is_metric else "",
                data_type=info.data_type if info else "string",
                data_column=column,
                visible=True,
            )
        )
    return tuple(described)


def query_meta(query: QueryRecord, infos: list[FieldInfo]) -> QueryMeta:
    """``meta.query``: the query as it ran (dates resolved, lists normalised)."""
    spec = query.spec
    return QueryMeta(
        ds_id=spec.ds_id,
        start_date=spec.start_date.isoformat(),
        end_date=spec.end_date.isoformat(),
        date_range_type=spec.date_range_type or "custom",
        ds_accounts=list(spec.accounts),
        ds_segments=list(spec.segments),
        ds_users=list(spec.users),
        fields=list(fields_meta(list(spec.fields), infos)),
        filter=spec.filter or "",
        order_rows=list(spec.order_rows),
        max_rows=spec.max_rows,
        compare_type=spec.compare_type or "none",
        settings=spec.settings,
    )


def result_meta(query: QueryRecord) -> ResultMeta:
    """``meta.result``: size and provenance of the rows."""
    result = query.result
    return ResultMeta(
        total_columns=result.total_columns if result else len(query.spec.fields),
        total_rows=result.total_rows if result else 0,
        run_seconds=result.run_seconds if result else 0.0,
        data_sampled=False,
        cache_used=query.cache_used,
        cache_time=iso_time(query.cache_time),
    )


def progress_meta(query: QueryRecord) -> Progress:
    """``meta.progress``: sub-queries done and in all."""
    return Progress(queries_ready=1 if query.status.is_final else 0, queries_total=1)


def status_meta(request_id: str, query: QueryRecord, workflow: tuple[int, int]) -> DataMeta:
    """The ``meta`` of a query that has no rows to show (yet, or at all)."""
    error = None
    if query.error is not None and query.status in (QueryStatus.FAILURE, QueryStatus.STOPPED):
        error = QueryError(
            code=query.error.code,
            message=query.error.message,
            description=query.error.description or None,
        )
    return DataMeta(
        request_id=request_id,
        schedule_id=query.schedule_id,
        status_code=query.status.value,
        progress=progress_meta(query),
        workflow=Workflow(tasks_scheduled=workflow[0], tasks_running=workflow[1]),
        error=error,
        excluded_accounts=query.excluded_accounts or None,
    )


def rows_meta(
    request_id: str, query: QueryRecord, infos: list[FieldInfo], links: dict[str, str]
) -> DataMeta:
    """The ``meta`` of a page of a successful query's rows."""
    return DataMeta(
        request_id=request_id,
        schedule_id=query.schedule_id,
        status_code=query.status.value,
        progress=progress_meta(query),
        query=query_meta(query, infos),
        result=result_meta(query),
        paginate=links,
        excluded_accounts=query.excluded_accounts or None,
    )


def page_links(
    base: str,
    params: dict[str, Any],
    offset: int,
    end: int | None,
    total: int,
    names: tuple[str, str],
    requested: int = 0,
) -> dict[str, str]:
    """``meta.paginate``: absolute links to the previous and next pages, where there are some.

    ``names`` are the offset parameters of the route: (offset_start, offset_end) whose end is
    inclusive, or (offset, limit). ``requested`` is the page size asked for: a last page
    holds fewer rows, and its links still walk pages of the size asked for, so that prev
    and next visit the same pages in both directions.
    """
    if end is None:
        return {}
    size = max(end - offset, requested)
    links: dict[str, str] = {}
    start_name, end_name = names
    inclusive = end_name == "offset_end"

    def link(start: int) -> str:
        stop = start + size
        second = stop - 1 if inclusive else size
        return base + "?" + urlencode({**params, start_name: start, end_name: second})

    if offset > 0:
        links["prev"] = link(max(0, offset - size))
    if end < total:
        links["next"] = link(end)
    return links
