"""All results of a batch as one file: a ``schedule_id`` column, then every field of the batch."""

from __future__ import annotations

from collections.abc import AsyncIterator

from querybatch.api.formats import delimited_stream, ndjson_stream, parquet_stream
from querybatch.engine.result_rows import Columns, RowChunks


def download_stream(
    fmt: str, columns: Columns, chunks: RowChunks, *, escape_formulas: bool = True
) -> AsyncIterator[bytes]:
    """The downloaded file in ``fmt`` (ndjson, csv or parquet); see formats on escaping."""
    if fmt == "csv":
        return delimited_stream(
            Columns(columns.ids, columns.ids, columns.data_types),
            chunks,
            ",",
            escape_formulas=escape_formulas,
        )
    if fmt == "parquet":
        return parquet_stream(columns, chunks)
    return ndjson_stream(columns, chunks)
