"""Every row of a batch's results, laid out on the batch's columns, in blocks of rows.

A batch of many sub-queries holds many small results (a day of one account: a few rows
each). Reading them one result at a time made a download cost per sub-query, not per row:
a read, a decode and a hand-over of the loop for every five rows. Here one read brings a
page of sub-queries with their first chunk of rows each, and rows from many results travel
together in blocks of about :data:`BLOCK_ROWS`, so that a batch of 200,000 sub-queries of five
rows streams as fast as one result of a million rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from querybatch.engine.result_rows import CHUNK_ROWS, Columns, ResultRows, RowChunks
from querybatch.store.results import BatchResult, decode_rows
from querybatch.store.store import Store

__all__ = ["BLOCK_ROWS", "PAGE_RESULTS", "batch_rows"]

PAGE_RESULTS = 1000  # sub-queries read at a time, each with its first chunk
BLOCK_ROWS = 4 * CHUNK_ROWS  # rows handed to the writer at a time
MAX_LAYOUTS = 1000  # layouts kept for the download of one batch


class _Layout:
    """Where each field of a sub-query's rows goes in the batch's wide row."""

    def __init__(self, columns: Columns, fields: Sequence[str]) -> None:
        position = {field: index for index, field in enumerate(columns.ids)}
        self.width = len(columns.ids)
        self.targets = [position[f] for f in fields]
        # Most batches ask every sub-query for the same fields, in the batch's column order.
        self.in_order = self.targets == list(range(1, self.width))

    def rows(self, schedule_id: str, rows: list[list[Any]]) -> list[list[Any]]:
        """``rows`` of the sub-query ``schedule_id`` as wide rows."""
        if self.in_order:
            return [[schedule_id, *row] for row in rows]
        laid_out = []
        for row in rows:
            wide: list[Any] = [None] * self.width
            wide[0] = schedule_id
            for target, value in zip(self.targets, row, strict=True):
                wide[target] = value
            laid_out.append(wide)
        return laid_out


async def batch_rows(
    store: Store,
    batch_id: str,
    columns: Columns,
    page_results: int = PAGE_RESULTS,
    *,
    after: int = 0,
    through: int | None = None,
) -> RowChunks:
    """Every row of every successful sub-query of the batch, in batch order, on ``columns``;
    only those after position ``after`` and up to ``through`` (included) when given (a
    transfer run's queries in the batch it shares with other runs).

    Yields blocks of about :data:`BLOCK_ROWS` rows (the last may hold fewer), and hands the
    loop to other requests after each one.
    """
    rest = ResultRows(store)
    layouts: dict[str, _Layout] = {}  # by the text of the fields: a batch asks for few sets
    block: list[list[Any]] = []
    async with aclosing(_pages(store, batch_id, page_results, after, through)) as pages:
        async for page in pages:
            for result in page:
                if result.first_chunk is None:
                    continue
                layout = layouts.get(key := result.fields_text())
                if layout is None:
                    layout = _Layout(columns, result.fields())
                    if len(layouts) < MAX_LAYOUTS:  # a batch of a million distinct sets
                        layouts[key] = layout
                block += layout.rows(result.schedule_id, decode_rows(result.first_chunk))
                if result.total_rows > CHUNK_ROWS:
                    async for rows in rest.read(result.result_id, CHUNK_ROWS, result.total_rows):
                        block += layout.rows(result.schedule_id, rows)
                        if len(block) >= BLOCK_ROWS:
                            yield block
                            block = []
                if len(block) >= BLOCK_ROWS:
                    yield block
                    block = []
                    await asyncio.sleep(0)
    if block:
        yield block


async def _pages(
    store: Store, batch_id: str, page_results: int, after: int, through: int | None
) -> AsyncGenerator[list[BatchResult]]:
    """The batch's successful sub-queries after ``after`` (up to ``through``), a page at a
    time, the next page read on a reader thread while this one is laid out."""
    read = store.results.batch_results
    if through is not None:  # no more than the window holds
        page_results = max(1, min(page_results, through - after))
    page = await read(batch_id, after, page_results)
    while page:
        following = (
            asyncio.ensure_future(read(batch_id, page[-1].position, page_results))
            if through is None or page[-1].position < through
            else None
        )
        try:
            yield page if through is None else [r for r in page if r.position <= through]
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        page = [] if following is None else await following
