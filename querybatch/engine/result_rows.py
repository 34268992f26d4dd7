"""A finished query's stored rows, read page by page: only the chunks a page overlaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from querybatch.domain.fields import FieldInfo
from querybatch.store.results import CHUNK_ROWS, chunk_span, decode_rows
from querybatch.store.store import Store

__all__ = [
    "CHUNK_ROWS",
    "Columns",
    "ResultRows",
    "RowChunks",
    "decoded_chunk",
    "ndjson_lines",
    "no_rows",
]

CHUNKS_PER_READ = 8
# A chunk larger than this is decoded on a thread: a full chunk takes a few milliseconds,
# and downloads side by side would make every other request wait that long at each await.
THREAD_DECODE_BYTES = 32 * 1024

RowChunks = AsyncIterator[list[list[Any]]]


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of a result: ids, display names and data types, in row order."""

    ids: list[str]
    names: list[str]
    data_types: list[str]

    @classmethod
    def of(cls, field_ids: Sequence[str], infos: Sequence[FieldInfo]) -> Columns:
        """Columns for the requested ids, named by the data source where it knows them."""
        by_id = {f.field_id: f for f in infos}
        return cls(
            ids=list(field_ids),
            names=[by_id[f].field_name if f in by_id else f for f in field_ids],
            data_types=[by_id[f].data_type if f in by_id else "string" for f in field_ids],
        )


class ResultRows:
    """Reads the stored rows of results, chunk by chunk (``CHUNK_ROWS`` rows a chunk)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self, result_id: str, offset: int, end: int) -> RowChunks:
        """Rows ``offset`` to ``end - 1`` of a result, reading only the chunks that hold them."""
        if end <= offset:
            return
        first, last = chunk_span(offset, end)
        async for seq, payload in self.payloads(result_id, first, last):
            base = seq * CHUNK_ROWS
            rows = await decoded_chunk(payload)
            yield rows[max(offset - base, 0) : max(min(end - base, len(rows)), 0)]

    async def payloads(
        self, result_id: str, first: int, last: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Chunks ``first`` to ``last`` of a result as stored, with their numbers."""
        results = self.store.results
        for seq in range(first, last + 1, CHUNKS_PER_READ):
            upto = min(last, seq + CHUNKS_PER_READ - 1)
            # Finished results are often read again (polling): the cache spares a thread hop,
            # and so does a single chunk's read (a small result, a page within one chunk): at
            # most CHUNK_ROWS rows, it is a point read.
            payloads = results.cache.get(result_id, seq, upto)
            if payloads is None:
                read = results.read_chunks.point if seq == upto else results.read_chunks
                payloads = await read(result_id, seq, upto)
            for index, payload in enumerate(payloads):
                yield seq + index, payload
                # Nothing else need suspend this stream (cached chunks, a client that reads as
                # fast as it is sent): hand the loop to other requests after every chunk, so
                # that a million-row answer costs them a few milliseconds at a time, not seconds.
                await asyncio.sleep(0)


def ndjson_lines(ids: list[str], rows: list[list[Any]]) -> bytes:
    """``rows`` as ndjson lines, each an object keyed by ``ids``."""
    return b"".join(orjson.dumps(dict(zip(ids, row, strict=True))) + b"\n" for row in rows)


async def decoded_chunk(payload: bytes) -> list[list[Any]]:
    """A stored chunk's rows, decoded on a thread if it is large."""
    if len(payload) > THREAD_DECODE_BYTES:
        return await asyncio.to_thread(decode_rows, payload)
    return decode_rows(payload)


async def no_rows() -> RowChunks:
    """The rows of a query without a result: none."""
    for _ in ():
        yield []
