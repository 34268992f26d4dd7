"""The QueryBatch object and the per-query status items of the batch seeds.

Each builder returns its response model of ``schemas``, which both documents the shape in
/openapi.json and writes the answer. A status page's items are the exception: a page of a
hundred is polled again and again, and building a model per item cost twice what writing
the item's JSON with orjson does (:func:`item_json`, which writes the very bytes the model
``BatchQueryItem`` would, checked by the unit tests).
"""

from __future__ import annotations

import string
from collections import OrderedDict
from functools import cache
from typing import Any
from urllib.parse import urlencode

import orjson

from querybatch.api import shapes
from querybatch.api.schemas import (
    BatchProgress,
    Link,
    QueryBatch,
    QueryBatchLinks,
)
from querybatch.domain.status import QueryStatus
from querybatch.engine.query_batches import BatchRecord, Counts, SubQueryState
from querybatch.errors import QueryBatchError

MAX_ITEMS_KEPT = 20_000


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


def item_json(query: SubQueryState, base: str) -> bytes:
    """One sub-query's status item (``schemas.BatchQueryItem``: times, split, error and where
    its results are) as JSON, written without building the model: its keys in the model's
    order, ``excluded_accounts`` left out when there are none."""
    error_info = None
    if query.error is not None and query.status in (QueryStatus.FAILURE, QueryStatus.STOPPED):
        error = query.error
        error_info = {
            "status": _http_status(error.code),
            "code": error.code,
            "message": error.message,
            "description": error.description,
        }
    result_info = None
    if query.status is QueryStatus.SUCCESS and query.total_rows is not None:
        result_info = {"total_rows": query.total_rows, "results_url": _results_url(query, base)}
    accounts, start_date, end_date = query.split()
    item: dict[str, Any] = {
        "@type": "batch_query",
        "schedule_id": query.schedule_id,
        "status_code": query.status.value,
        "query_start_time": iso_time(query.start_time),
        "query_end_time": iso_time(query.end_time),
        "split_info": {
            "ds_id": query.ds_id,
            "ds_accounts": list(accounts),
            "start_date": start_date,
            "end_date": end_date,
        },
        "error_info": error_info,
        "result_info": result_info,
    }
    if query.excluded_accounts:
        item["excluded_accounts"] = query.excluded_accounts
    return orjson.dumps(item)


def _results_url(query: SubQueryState, base: str) -> str:
    schedule_id = query.schedule_id
    if schedule_id and not schedule_id.encode().rstrip(_URL_SAFE):
        # Nothing to quote (schedule ids are ours, letters, digits and "_"): what urlencode
        # writes, at a tenth of its cost.
        return f"{base}/query/results?schedule_id={schedule_id}"
    return f"{base}/query/results?" + urlencode({"schedule_id": query.schedule_id})


# What urllib's quoting leaves as it is.
_URL_SAFE = string.ascii_letters.encode() + string.digits.encode() + b"_.-~"


class ItemJson:
    """The JSON of sub-query status items, written once per state of each sub-query.

    A status page is polled again and again while most of its sub-queries stay as they
    were; an item changes only with its status or times (its error and result come with
    its end), so those, with the base URL of its links, key it.
    """

    def __init__(self, max_kept: int = MAX_ITEMS_KEPT) -> None:
        self.max_kept = max_kept
        self._kept: OrderedDict[tuple[object, ...], bytes] = OrderedDict()

    def of(self, query: SubQueryState, base: str) -> bytes:
        """``query``'s item as JSON."""
        key = (query.id, query.status, query.start_time, query.end_time, base)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        item = item_json(query, base)
        self._kept[key] = item
        if len(self._kept) > self.max_kept:
            self._kept.popitem(last=False)
        return item

    def page(self, queries: list[SubQueryState], base: str) -> bytes:
        """A JSON array of the items of ``queries``."""
        return b"[" + b",".join([self.of(query, base) for query in queries]) + b"]"


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
