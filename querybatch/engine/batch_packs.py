"""A stopped batch's rows, packed a range of positions at a time for its downloads.

A download of a batch of many small results read each sub-query's result on its own (its row
of the read, its chunk's decoding, its layout): for five rows each, that cost as much again as
the rows, and such a download ran at a quarter of the rows per second of one large result.
Once a batch stops its rows no longer change, so each range of :data:`PACK_POSITIONS`
positions is laid out on the batch's columns once, in the background, and kept in the two
forms downloads read: one JSON array of wide rows (CSV and Parquet decode it) and the ndjson
lines themselves (sent as they are), each compressed with zlib (together far less room than
the rows as JSON). A download then reads a range's pack as it would read one result.

The packs hold exactly the rows the download would otherwise lay out, so a file is the same
byte for byte whether it was read from packs, from results, or from both (a download that
starts while packing is under way). A range whose results hold more than
:data:`PACK_MAX_ROWS` rows is left as it is: large results cost per row already. Packs go
with the batch when it expires. Like expiry, packing runs on the node that leads, one pass
at a time, and while work runs it takes at most a small share of the time
(:mod:`querybatch.engine.pacing`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import orjson

from querybatch import logs
from querybatch.engine.batch_rows import BLOCK_ROWS, PAGE_RESULTS, StoredRows, batch_stored_rows
from querybatch.engine.pacing import rest_after
from querybatch.engine.result_rows import Columns, ndjson_lines
from querybatch.store.codec import pack_bytes
from querybatch.store.packs import PackedRange
from querybatch.store.records import BatchRecord
from querybatch.store.results import decode_rows
from querybatch.store.store import Store

log = logging.getLogger(__name__)

PACK_POSITIONS = PAGE_RESULTS  # the ranges a download reads
PACK_MAX_ROWS = BLOCK_ROWS
LEAST_QUERIES = 100  # a smaller batch downloads fast enough a result at a time
PACK_PAUSE = 0.005  # between two ranges, while nothing runs
BATCHES_AT_A_TIME = 10


class Packer:
    """Packs stopped batches in the background, one pass at a time."""

    def __init__(
        self,
        store: Store,
        every: float,
        *,
        busy: Callable[[], bool] = lambda: False,
        least_queries: int = LEAST_QUERIES,
        pause: float = PACK_PAUSE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.every = every  # a pass at least this often, for batches stopped on other nodes
        self.busy = busy
        self.least_queries = least_queries
        self.pause = pause
        self.clock = clock
        self._poked = True  # the first start looks at once (a restart may have left some)
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether a pass is under way."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start a pass unless one runs, or none is due (not poked, and less than ``every``
        since the last)."""
        now = self.clock()
        if self.running or (not self._poked and now - self._last < self.every):
            return
        self._poked, self._last = False, now
        self._task = asyncio.create_task(self._logged_pass(), name="qb-packer")

    def poke(self) -> None:
        """Have the next :meth:`start` begin a pass (batches stopped)."""
        self._poked = True

    async def stop(self) -> None:
        """Stop the pass under way (what it packed stays packed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_pass(self) -> int:
        """Pack every stopped batch left to pack; how many ranges were packed."""
        packed = 0
        while batches := await self.store.packs.unpacked(
            self.clock(), self.least_queries, BATCHES_AT_A_TIME
        ):
            for batch, through in batches:
                packed += await self._pack_batch(batch, through)
        return packed

    async def _pack_batch(self, batch: BatchRecord, after: int) -> int:
        """Pack the batch's ranges from ``after`` on; how many made a pack."""
        ids = ["schedule_id", *batch.columns]
        columns = Columns(ids, ids, ["string"] * len(ids))
        packed = 0
        while after < batch.query_amount:
            through = min(after + PACK_POSITIONS, batch.query_amount)
            began = time.perf_counter()
            try:
                pack = await self._pack(batch.id, columns, after, through)
            except (KeyError, ValueError, TypeError) as exc:
                # Rows its download could not lay out either: left to be read as they are,
                # rather than looked at again by every pass.
                log.warning("batch %s: rows after %d not packed: %r", batch.id, after, exc)
                pack = None
            if not await self.store.packs.write(batch.id, after, through, pack):
                break  # another node's packer is at it, or the batch is gone
            packed += pack is not None
            after = through
            await asyncio.sleep(rest_after(time.perf_counter() - began, self.busy(), self.pause))
        return packed

    async def _pack(
        self, batch_id: str, columns: Columns, after: int, through: int
    ) -> PackedRange | None:
        """The range's pack; None if the range holds no rows, or too many (its results
        are large)."""
        stored: list[StoredRows] = []
        rows = 0
        blocks = batch_stored_rows(self.store, batch_id, columns, after=after, through=through)
        async with aclosing(blocks):
            async for block in blocks:
                stored += block
                rows += sum(chunk.row_count for chunk in block)
                if rows > PACK_MAX_ROWS:
                    return None
        if not rows:
            return None
        return await asyncio.to_thread(_packed, columns, stored)

    async def _logged_pass(self) -> None:
        try:
            packed = await self.run_pass()
        except Exception as exc:
            logs.retrying(log, "packing batches failed", exc)
            return
        if packed:
            log.debug("packed %d ranges of stopped batches", packed)


def _packed(columns: Columns, stored: list[StoredRows]) -> PackedRange:
    """The chunks' rows laid out on the batch's columns, as one JSON array and as the
    download's ndjson lines, both compressed."""
    wide: list[list[Any]] = []
    for chunk in stored:
        wide += chunk.layout.rows(chunk.schedule_id, decode_rows(chunk.payload))
    rows, lines = orjson.dumps(wide), ndjson_lines(columns.ids, wide)
    return PackedRange(len(wide), pack_bytes(rows), len(rows), pack_bytes(lines), len(lines))
