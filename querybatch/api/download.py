"""All results of a batch as one file: a ``schedule_id`` column, then every field of the batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from querybatch.api.formats import (
    Columns,
    RowChunks,
    delimited_stream,
    ndjson_stream,
    parquet_stream,
    stored_rows,
)
from querybatch.api.services import Services
from querybatch.domain.status import QueryStatus
from querybatch.store.records import BatchRecord

PAGE = 500


async def batch_columns(services: Services, batch: BatchRecord) -> Columns:
    """``schedule_id`` plus the union of the batch's fields, typed where sources agree."""
    ids: list[str] = list(batch.settings.get("columns") or [])
    types: dict[str, str] = {}
    names: dict[str, str] = {}
    for ds_id in services.sources:
        for info in (await services.sources.fields(ds_id)).values():
            if info.field_id in ids:
                names.setdefault(info.field_id, info.field_name)
                if types.setdefault(info.field_id, info.data_type) != info.data_type:
                    types[info.field_id] = "string"
    return Columns(
        ids=["schedule_id", *ids],
        names=["schedule_id", *(names.get(i, i) for i in ids)],
        data_types=["string", *(types.get(i, "string") for i in ids)],
    )


async def batch_rows(services: Services, batch: BatchRecord, columns: Columns) -> RowChunks:
    """Every row of every successful sub-query, in batch order, laid out on ``columns``."""
    position = {field: index for index, field in enumerate(columns.ids)}
    offset = 0
    while True:
        queries = await services.store.jobs.batch_queries( batch.id, offset, PAGE
        )
        if not queries:
            return
        offset = queries[-1].position
        for query in queries:
            if query.status is not QueryStatus.SUCCESS or query.result is None:
                continue
            targets = [position[f] for f in query.spec["fields"]]
            async for rows in stored_rows(
                services.store, query.result.id, 0, query.result.total_rows
            ):
                laid_out: list[list[Any]] = []
                for row in rows:
                    wide: list[Any] = [None] * len(columns.ids)
                    wide[0] = query.schedule_id
                    for target, value in zip(targets, row, strict=True):
                        wide[target] = value
                    laid_out.append(wide)
                yield laid_out


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
