"""A worker process's side of scale-out: run handed-over sub-queries, record them, report back.

Each worker process has its own store connection, data sources and in-process executor
(with its run recorder), and runs the sub-queries of a handed-over chunk concurrently. While
they run it renews their leases and lets go of any that were cancelled, timed out or taken
back (the store no longer says they belong to this attempt).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from querybatch.connectors.sources import build_sources
from querybatch.engine.executors.local import build_local_executor
from querybatch.errors import StoreUnavailable
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5

Announce = Callable[[Sequence[WorkItem]], None]


class WorkerRuntime:
    """Everything one worker process needs to run sub-queries."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.open(
            settings.resolved_database_url, result_ttl=settings.result_ttl, migrate=False
        )
        self.sources = build_sources(settings)
        self.executor = build_local_executor(
            settings, self.store, self.sources, slots=1_000_000, confirm_start=True
        )
        self._done: set[int] = set()
        self._changed = asyncio.Event()

    async def open(self) -> None:
        """Open the data sources and start recording (call on the process's event loop)."""
        await self.sources.open()
        # Batches that stop here are seen by their leader node in the store.
        await self.executor.start(self._on_done, lambda _batch_ids: None)

    async def run(self, items: Sequence[WorkItem], announce: Announce) -> None:
        """Run these sub-queries to their end, and return once their outcomes are written.

        Each one that ended is ``announce``d once its outcome is written, without waiting for
        the rest of the chunk: the leader hands its slot to the next sub-query at once.
        """
        ids = {item.query_id for item in items}
        announced: set[int] = set()
        self.executor.submit(items)
        last_renewal = time.monotonic()
        while not ids <= announced:
            try:
                await asyncio.wait_for(self._changed.wait(), WATCH_SECONDS)
            except TimeoutError:
                pending = [i for i in items if i.query_id not in self._done]
                try:
                    await self._let_go_of_lost(pending)
                    if time.monotonic() - last_renewal > self.settings.lease_seconds / 3:
                        await self.store.runs.renew_leases(
                            pending,
                            time.time() + self.settings.lease_seconds,
                        )
                        last_renewal = time.monotonic()
                except StoreUnavailable as exc:
                    # The runs go on; what they could not record is retried by the store's
                    # return, or their leases lapse and the sub-queries run again.
                    log.warning("could not check or renew %d runs: %s", len(pending), exc)
            self._changed.clear()
            ended = [i for i in items if i.query_id in self._done and i.query_id not in announced]
            if ended:
                await self.executor.drain()
                announced.update(i.query_id for i in ended)
                announce(ended)
        self._done -= ids

    async def _let_go_of_lost(self, pending: Sequence[WorkItem]) -> None:
        owned = await self.store.runs.still_owned([(i.query_id, i.attempt) for i in pending])
        lost = [i.query_id for i in pending if i.query_id not in owned]
        if lost:
            log.info("letting go of %d sub-queries cancelled or taken back", len(lost))
            await self.executor.cancel(lost)

    def _on_done(self, items: Sequence[WorkItem]) -> None:
        self._done.update(item.query_id for item in items)
        self._changed.set()

    async def close(self) -> None:
        """Stop running, write what is pending and close the store and sources."""
        await self.executor.stop()
        await self.sources.close()
        self.store.close()
