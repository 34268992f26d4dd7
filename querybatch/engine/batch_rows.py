"""Every row of a batch's results, laid out on the batch's columns, in blocks of rows.

A batch of many sub-queries holds many small results (a day of one account: a few rows
each). Reading them one result at a time made a download cost per sub-query, not per row:
a read, a decode and a hand-over of the loop for every five rows. Here one read brings a
page of sub-queries with their first chunk of rows each, and rows from many results travel
together in blocks of about :data:`BLOCK_ROWS`, so that a batch of 200,000 sub-queries of five
rows streams as fast as one result of a million rows.

The blocks come in two forms: :func:`batch_stored_rows` gives each sub-query's chunks as the
store keeps them (their JSON, with the layout that places their fields), which a writer of
JSON can copy without decoding them; :func:`decoded_rows` decodes and lays them out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from itertools import pairwise
from typing import Any, NamedTuple

from querybatch.engine.result_rows import (
    CHUNK_ROWS,
    Columns,
    ResultRows,
    RowChunks,
    decoded_chunk,
)
from querybatch.store.results import BatchResult, Pack, PackForm, decode_rows
from querybatch.store.store import Store

__all__ = [
    "BLOCK_ROWS",
    "PAGE_RESULTS",
    "Layout",
    "StoredBlocks",
    "StoredRows",
    "batch_stored_rows",
    "decoded_rows",
]

PAGE_RESULTS = 1000  # sub-queries read at a time, each with its first chunk
BLOCK_ROWS = 4 * CHUNK_ROWS  # rows handed to the writer at a time
MAX_LAYOUTS = 1000  # layouts kept for the download of one batch


class Layout:
    """Where each field of a sub-query's rows goes in the batch's wide row, whose first
    column is the sub-query's schedule id."""

    def __init__(
        self, columns: Columns, fields: Sequence[str], *, pack: PackForm | None = None
    ) -> None:
        position = {field: index for index, field in enumerate(columns.ids)}
        self.width = len(columns.ids)
        # A pack's rows: wide already, their schedule id first ("rows", kept as they are), or
        # the download's ndjson lines ("lines").
        self.pack = pack
        self.targets = [position[f] for f in fields]
        # Most batches ask every sub-query for the same fields, in the batch's column order.
        self.in_order = self.targets == list(range(1, self.width))
        # Fields in column order (some of the batch's columns missing): a row's values keep
        # their order in the wide row.
        self.ascending = all(a < b for a, b in pairwise(self.targets))

    def rows(self, schedule_id: str, rows: list[list[Any]]) -> list[list[Any]]:
        """``rows`` of the sub-query ``schedule_id`` as wide rows."""
        if self.pack is not None:
            return rows
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


class StoredRows(NamedTuple):
    """Rows of one sub-query as the store keeps them: a chunk's JSON, not yet decoded; or
    the rows of many, a pack's (see :class:`Layout`; no schedule id of its own)."""

    schedule_id: str
    layout: Layout
    payload: bytes
    row_count: int  # the rows the payload holds

    def decoded(self) -> list[list[Any]]:
        """The rows, decoded (not laid out)."""
        return decode_rows(self.payload)


StoredBlocks = AsyncGenerator[list[StoredRows]]


async def batch_stored_rows(
    store: Store,
    batch_id: str,
    columns: Columns,
    page_results: int = PAGE_RESULTS,
    *,
    after: int = 0,
    through: int,
    packed: PackForm | None = None,
) -> StoredBlocks:
    """Every stored chunk of every successful sub-query of the batch, in batch order, with
    the layout of its rows on ``columns``: those after position ``after`` up to ``through``
    (included), which is the batch's last position for all of them, or a transfer run's
    window of the batch it shares with other runs. With ``packed`` (a stopped batch read
    from position 0 in ranges of :data:`PAGE_RESULTS`, as packs are made), a range that was
    packed comes as its pack, in that form.

    Yields blocks of chunks holding about :data:`BLOCK_ROWS` rows in all (the last may hold
    fewer), and hands the loop to other requests after each one.
    """
    rest = ResultRows(store)
    layouts: dict[str, Layout] = {}  # by the text of the fields: a batch asks for few sets
    packed_layout = Layout(columns, columns.ids, pack=packed)
    block: list[StoredRows] = []
    rows = 0
    pages = _pages(store, batch_id, page_results, after, through, packed=packed)
    async with aclosing(pages):
        async for page in pages:
            if isinstance(page, Pack):
                block.append(StoredRows("", packed_layout, page.payload, page.row_count))
                rows += page.row_count
                if rows >= BLOCK_ROWS:
                    yield block
                    block, rows = [], 0
                continue
            for result in page:
                if result.first_chunk is None:
                    continue
                layout = _layout(result, columns, layouts)
                schedule_id, total = result.schedule_id, result.total_rows
                count = min(total, CHUNK_ROWS)
                block.append(StoredRows(schedule_id, layout, result.first_chunk, count))
                rows += count
                if total > CHUNK_ROWS:
                    last = (total - 1) // CHUNK_ROWS
                    async for seq, payload in rest.payloads(result.result_id, 1, last):
                        count = min(total - seq * CHUNK_ROWS, CHUNK_ROWS)
                        block.append(StoredRows(schedule_id, layout, payload, count))
                        rows += count
                        if rows >= BLOCK_ROWS:
                            yield block
                            block, rows = [], 0
                if rows >= BLOCK_ROWS:
                    yield block
                    block, rows = [], 0
                    await asyncio.sleep(0)
    if block:
        yield block


def _layout(result: BatchResult, columns: Columns, layouts: dict[str, Layout]) -> Layout:
    """The layout of ``result``'s fields, kept in ``layouts`` by the text of its fields."""
    layout = layouts.get(key := result.fields_text())
    if layout is None:
        layout = Layout(columns, result.fields())
        if len(layouts) < MAX_LAYOUTS:  # a batch of a million distinct sets
            layouts[key] = layout
    return layout


async def decoded_rows(blocks: StoredBlocks) -> RowChunks:
    """The rows of stored blocks, decoded and laid out: a block of rows for each."""
    async with aclosing(blocks):
        async for block in blocks:
            rows: list[list[Any]] = []
            for stored in block:
                decoded = await decoded_chunk(stored.payload)
                rows += stored.layout.rows(stored.schedule_id, decoded)
            yield rows


async def _pages(
    store: Store,
    batch_id: str,
    page_results: int,
    after: int,
    through: int,
    *,
    packed: PackForm | None,
) -> AsyncGenerator[list[BatchResult] | Pack]:
    """The batch's successful sub-queries after ``after`` up to ``through``, a range of
    ``page_results`` positions at a time (or the range's pack, if ``packed``), the next
    ranges read on reader threads while this one is laid out: one on SQLite, whose reads
    hold the GIL for much of their time, several on PostgreSQL, whose reads wait on its
    server side by side."""
    read = store.results.batch_range
    ahead = 1 if store.db.is_sqlite else 3
    bounds = iter(range(after, through, page_results))
    reading: deque[asyncio.Future[list[BatchResult] | Pack]] = deque()

    def read_next() -> None:
        low = next(bounds, None)
        if low is not None:
            upto = min(low + page_results, through)
            reading.append(asyncio.ensure_future(read(batch_id, low, upto, packed=packed)))

    for _ in range(ahead):
        read_next()
    try:
        while reading:
            page = await reading.popleft()
            read_next()
            if page:
                yield page
    finally:
        for pending in reading:
            pending.cancel()
