"""The QueryBatch object and the per-query status items of the batch seeds.

Each builder returns its response model of ``schemas``, which both documents the shape in
/openapi.json and writes the answer.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import urlencode

from querybatch.api import shapes
from querybatch.api.schemas import (
    BatchProgress,
    BatchQueryError,
    BatchQueryItem,
    BatchQueryResult,
    Link,
    QueryBatch,
    QueryBatchLinks,
    SplitInfo,
)
from querybatch.domain.status import QueryStatus
from querybatch.engine.query_batches import BatchRecord, Counts, QueryRecord
from querybatch.errors import QueryBatchError


def iso_time(epoch: float | None) -> str | None:
    """:func:`shapes.iso_time`, but null for a stored time no calendar can show.

    Inputs are bounded when they arrive; this keeps one bad stored value (written before
    the bounds, or by hand) from failing every listing of its tenant.
    """
    try:
        return shapes.iso_time(epoch)
    except (OverflowError, ValueError, OSError):
        return None


def progress(counts: Counts) -> BatchProgress:
    """The five counters that always add up to the number of sub-queries."""
    return BatchProgress(
        queued=counts.queued,
        running=counts.running,
        success=counts.success,
        failure=counts.failure,
        stopped=counts.stopped,
    )


def query_batch(batch: BatchRecord, base: str) -> QueryBatch:
    """The QueryBatch object (``@type`` query_batch) with a link to its status."""
    settings = batch.settings
    return QueryBatch(
        batch_id=batch.id,
        status_code=batch.status.value,
        schedule_time=iso_time(batch.schedule_time),
        start_time=iso_time(batch.start_time),
        end_time=iso_time(batch.end_time),
        cancel_time=iso_time(batch.cancel_time),
        description=settings.description,
        split_accounts_policy=settings.split_accounts_policy,
        split_dates_policy=settings.split_dates_policy,
        timeout_minutes=settings.timeout_minutes,
        query_concurrency=settings.query_concurrency,
        query_output_format=settings.query_output_format,
        add_exclude_account_errors=settings.add_exclude_account_errors,
        add_clean_data_types=settings.add_clean_data_types,
        query_amount=batch.query_amount,
        created_time=iso_time(batch.created_at),
        progress=progress(batch.counts),
        callback_url=batch.callback_url or None,
        links=QueryBatchLinks(status=Link(href=f"{base}/query/batch/{batch.id}/status")),
    )


def batch_query(query: QueryRecord, base: str) -> BatchQueryItem:
    """One sub-query's status item: times, split, error and where its results are."""
    error_info = None
    if query.error is not None and query.status in (QueryStatus.FAILURE, QueryStatus.STOPPED):
        error_info = BatchQueryError(
            status=_http_status(query.error.code),
            code=query.error.code,
            message=query.error.message,
            description=query.error.description,
        )
    result_info = None
    if query.status is QueryStatus.SUCCESS and query.result is not None:
        result_info = BatchQueryResult(
            total_rows=query.result.total_rows,
            results_url=f"{base}/query/results?" + urlencode({"schedule_id": query.schedule_id}),
        )
    return BatchQueryItem(
        schedule_id=query.schedule_id,
        status_code=query.status.value,
        query_start_time=iso_time(query.start_time),
        query_end_time=iso_time(query.end_time),
        split_info=SplitInfo(
            ds_id=query.ds_id,
            ds_accounts=list(query.spec.accounts),
            start_date=query.spec.start_date.isoformat(),
            end_date=query.spec.end_date.isoformat(),
        ),
        error_info=error_info,
        result_info=result_info,
        excluded_accounts=query.excluded_accounts or None,
    )


def _http_status(code: str) -> int:
    """The HTTP status a query error code stands for (502 for data-source failures)."""
    return _statuses().get(code, 409 if code == "QUERY_STOPPED" else 500)


@cache
def _statuses() -> dict[str, int]:
    found: dict[str, int] = {}
    pending: list[type[QueryBatchError]] = [QueryBatchError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls.status)
        pending.extend(cls.__subclasses__())
    return found
