"""Expiry in the background: what outlived its time is deleted a slice at a time.

Batches whose results expired are deleted with their sub-queries, results and chunks, and
chunks of runs that never recorded an outcome go once they are older than a grace period.
Every pass works in bounded transactions (at most ``SLICE_ROWS`` sub-queries, or
``SLICE_CHUNKS`` chunks looked at, and only as many as take about ``SLICE_SECONDS``) with a
pause between them, so a store that holds a million expired sub-queries neither holds up the
start of a server nor, for long, the writes of the work that runs meanwhile; chunks are
looked at only once (each pass starts where the last one ended), so a pass costs what
expired, not what the store holds. The pages freed are then
given back to the disk (SQLite's incremental vacuum), ``SLICE_PAGES`` at a time. One pass
runs at a time; the scheduler starts one every ``QB_SWEEP_SECONDS`` on the node that leads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from querybatch import logs
from querybatch.engine.pacing import PAUSE_SECONDS, rest_after
from querybatch.store.store import Store
from querybatch.store.upkeep import ChunkKey

log = logging.getLogger(__name__)

_Done = TypeVar("_Done")

# Chunks without a results row are a run still writing, or a run that died: after this long,
# the run is given up on (no lease outlives it).
ORPHAN_GRACE = 7200.0
SLICE_ROWS = 1000
SLICE_CHUNKS = 500
SLICE_PAGES = 2000  # pages (8 MB at most) given back to the disk at a time
# A slice holds the store's writer for about this long at most: the work that starts while a
# slice is under way waits for it (a slice of 1,000 sub-queries took 20 ms on a warm store
# alone, 70 ms on a cold one and 180 ms beside a running batch).
SLICE_SECONDS = 0.02


@dataclass
class SliceSize:
    """How much the next slice takes on: what fits in ``seconds`` at the pace of the last
    one, between 1 and ``most``, growing at most twofold from one slice to the next."""

    most: int
    seconds: float = SLICE_SECONDS
    size: int = field(init=False)
    spent: float = 0.0  # how long the last slice took

    def __post_init__(self) -> None:
        self.size = max(1, self.most // 8)  # a pass may begin beside work: begin small

    def after(self, spent: float) -> None:
        """Size the next slice by how long a slice of ``size`` took."""
        self.spent = spent
        fits = self.size * self.seconds / spent if spent > 0 else float(self.most)
        self.size = max(1, min(self.most, 2 * self.size, int(fits)))


class Expiry:
    """Runs passes of expiry as background tasks, one at a time."""

    def __init__(
        self,
        store: Store,
        orphan_grace: float,
        *,
        orphans_before: float = 0.0,
        slice_rows: int = SLICE_ROWS,
        slice_chunks: int = SLICE_CHUNKS,
        slice_pages: int = SLICE_PAGES,
        pause: float = PAUSE_SECONDS,
        clock: Callable[[], float] = time.time,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.orphan_grace = orphan_grace
        # Chunks written before this moment whose run recorded nothing are lost at once:
        # on the embedded default, runs of a previous process cannot finish any more.
        self.orphans_before = orphans_before
        self.slice_rows = slice_rows
        self.slice_chunks = slice_chunks
        self.slice_pages = slice_pages
        self.pause = pause
        self.clock = clock
        self.busy = busy  # whether work runs or is due (the engine's at_work)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether a pass is under way."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start a pass in the background, unless one is under way."""
        if not self.running:
            self._task = asyncio.create_task(self._logged_pass(), name="qb-expiry")

    async def stop(self) -> None:
        """Stop the pass under way (what it deleted stays deleted)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_pass(self) -> tuple[int, int, int]:
        """One pass to the end: (sub-queries, batches, lost runs' chunks) deleted."""
        queries = batches = 0
        now = self.clock()
        rows = SliceSize(self.slice_rows)
        while True:
            done = await self._slice(rows, self.store.upkeep.expire_slice(now, rows.size))
            queries, batches = queries + done.queries, batches + done.batches
            if done.done:
                break
            await self._rest(rows)
        lost = 0
        before = max(now - self.orphan_grace, self.orphans_before)
        after: ChunkKey | None = await self.store.upkeep.orphans_checked()
        chunks = SliceSize(self.slice_chunks)
        while after is not None:
            orphans = self.store.upkeep.orphan_slice(before, after, chunks.size)
            dropped, after = await self._slice(chunks, orphans)
            lost += dropped
            if after is not None:
                await self._rest(chunks)
        await self.store.upkeep.mark_orphans_checked(before)
        pages = SliceSize(self.slice_pages)
        while await self._slice(pages, self.store.upkeep.return_space(pages.size)):
            await self._rest(pages)
        return queries, batches, lost

    def pause_after(self, spent: float) -> float:
        """How long to leave the store to the work after a slice that took ``spent`` seconds
        (see :func:`querybatch.engine.pacing.rest_after`)."""
        return rest_after(spent, self.busy(), self.pause)

    async def _slice(self, size: SliceSize, work: Awaitable[_Done]) -> _Done:
        """Await a slice's ``work`` and size the next slice of its kind by its time."""
        began = time.perf_counter()
        done = await work
        size.after(time.perf_counter() - began)
        return done

    async def _rest(self, size: SliceSize) -> None:
        await asyncio.sleep(self.pause_after(size.spent))

    async def _logged_pass(self) -> None:
        try:
            queries, batches, lost = await self.run_pass()
        except Exception as exc:
            logs.retrying(log, "expiry pass failed", exc)
            return
        if queries or batches or lost:
            logs.event(
                log,
                "expired",
                "deleted {batches} expired batches ({queries} sub-queries) and the rows of "
                "{lost} lost runs",
                batches=batches,
                queries=queries,
                lost=lost,
            )
