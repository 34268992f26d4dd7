"""All results of a batch as one file: a ``schedule_id`` column, then every field of the batch.

A stopped batch's rows no longer change (until it expires and is gone), and each format
writes the same rows as the same bytes, so its download has a strong ETag and byte ranges
can be served; a batch still running answers ``Accept-Ranges: none``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from querybatch.api.formats import delimited_stream, parquet_stream
from querybatch.api.ranges import strong_etag
from querybatch.api.stored_ndjson import ndjson_download
from querybatch.domain.status import BatchStatus
from querybatch.engine.batch_rows import StoredBlocks, decoded_rows
from querybatch.engine.query_batches import BatchDownload
from querybatch.engine.result_rows import Columns


def download_stream(
    fmt: str, columns: Columns, blocks: StoredBlocks, *, escape_formulas: bool = True
) -> AsyncIterator[bytes]:
    """The downloaded file in ``fmt`` (ndjson, csv or parquet); see formats on escaping."""
    if fmt == "csv":
        return delimited_stream(
            Columns(columns.ids, columns.ids, columns.data_types),
            decoded_rows(blocks),
            ",",
            escape_formulas=escape_formulas,
        )
    if fmt == "parquet":
        return parquet_stream(columns, decoded_rows(blocks))
    return ndjson_download(columns, blocks)


def download_etag(download: BatchDownload, fmt: str, *, escape_formulas: bool) -> str | None:
    """The strong ETag of a stopped batch's download in ``fmt``; None while it may change."""
    batch = download.batch
    if batch.status is not BatchStatus.STOPPED:
        return None
    columns = download.columns
    return strong_etag(
        "batch",
        batch.id,
        batch.end_time,
        batch.counts,
        fmt,
        escape_formulas,
        columns.ids,
        columns.data_types,
    )
