"""A worker process's side of scale-out: run handed-over sub-queries, record them, report back.

Each worker process has its own store connection, data sources, recorder and in-process
executor, and runs the sub-queries of a handed-over chunk concurrently. While they run it
renews their leases and lets go of any that were cancelled, timed out or taken back (the
store no longer says they belong to this attempt).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from querybatch.connectors.registry import SourceRegistry
from querybatch.connectors.sources import build_sources
from querybatch.domain.fields import Row
from querybatch.engine.executors.local import LocalExecutor
from querybatch.engine.recorder import Recorder
from querybatch.engine.runner import RetryPolicy, Runner
from querybatch.engine.throttle import SourceThrottle
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5


def build_local_executor(
    settings: Settings,
    store: Store,
    sources: SourceRegistry,
    recorder: Recorder,
    throttle: SourceThrottle,
    slots: int,
) -> LocalExecutor:
    """An in-process executor whose runs write their chunks to ``store``."""

    async def write_chunk(result_id: str, seq: int, rows: Sequence[Row]) -> None:
        await store.results.write_chunk( result_id, seq, rows, time.time())

    async def drop_chunks(result_id: str) -> None:
        await store.results.drop( result_id)

    runner = Runner(
        sources,
        write_chunk,
        drop_chunks,
        RetryPolicy(retries=settings.retries, backoff=settings.retry_backoff),
        throttle,
    )
    return LocalExecutor(runner, recorder, slots)


class WorkerRuntime:
    """Everything one worker process needs to run sub-queries."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store.open(
            settings.resolved_database_url, result_ttl=settings.result_ttl, migrate=False
        )
        self.sources = build_sources(settings)
        self.recorder = Recorder(self.store, settings.lease_seconds, lambda _ids: None)
        self.executor = build_local_executor(
            settings, self.store, self.sources, self.recorder, SourceThrottle(), slots=1_000_000
        )
        self._done: set[int] = set()
        self._changed = asyncio.Event()

    async def open(self) -> None:
        """Open the data sources and start recording (call on the process's event loop)."""
        await self.sources.open()
        self.recorder.start()
        await self.executor.start(self._on_done)

    async def run(self, items: Sequence[WorkItem]) -> None:
        """Run these sub-queries to their end, and return once their outcomes are written."""
        ids = {item.query_id for item in items}
        self.executor.submit(items)
        last_renewal = time.monotonic()
        while not ids <= self._done:
            try:
                await asyncio.wait_for(self._changed.wait(), WATCH_SECONDS)
            except TimeoutError:
                pending = [i for i in items if i.query_id not in self._done]
                await self._let_go_of_lost(pending)
                if time.monotonic() - last_renewal > self.settings.lease_seconds / 3:
                    last_renewal = time.monotonic()
                    await self.store.runs.renew_leases(
                        pending,
                        time.time() + self.settings.lease_seconds,
                    )
            self._changed.clear()
        self._done -= ids
        await self.recorder.drain()

    async def _let_go_of_lost(self, pending: Sequence[WorkItem]) -> None:
        owned = await self.store.runs.still_owned( [(i.query_id, i.attempt) for i in pending]
        )
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
        await self.recorder.close()
        await self.sources.close()
        self.store.close()
