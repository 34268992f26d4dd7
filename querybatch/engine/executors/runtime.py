"""A worker process's side of scale-out: run handed-over sub-queries, record them, report back.

Each worker process has its own store connection, data sources and in-process executor
(with its run recorder) on one event loop, and runs the sub-queries of every chunk it holds
at once: Celery's threads hand chunks in, and each thread waits for its chunk to end. One
watcher renews the leases of everything running here and lets go of any sub-query that was
cancelled, timed out or taken back (the store no longer says it belongs to this attempt);
one announcer tells the leader, in one notice per group commit, which sub-queries ended and
which batches their ends stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from querybatch.connectors.sources import build_sources
from querybatch.engine.executors.local import build_local_executor
from querybatch.errors import StoreUnavailable
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5

# The sub-queries that ended, and the batches their ends stopped.
Announce = Callable[[Sequence[WorkItem], Sequence[str]], None]


@dataclass(eq=False)
class _Chunk:
    """The sub-queries of one handed-over chunk that have not been announced yet."""

    waiting: set[int]
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerRuntime:
    """Everything one worker process needs to run sub-queries."""

    def __init__(self, settings: Settings, announce: Announce) -> None:
        self.settings = settings
        self.announce = announce
        self.store = Store.open(
            settings.resolved_database_url, result_ttl=settings.result_ttl, migrate=False
        )
        self.sources = build_sources(settings)
        self.executor = build_local_executor(
            settings, self.store, self.sources, slots=1_000_000, confirm_start=True
        )
        self._running: dict[int, WorkItem] = {}  # submitted here and not ended
        self._chunks: dict[int, list[_Chunk]] = {}  # the chunks waiting for each sub-query
        self._ended: list[WorkItem] = []  # ended and not announced yet
        self._stopped: list[str] = []  # batches stopped here and not announced yet
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Open the data sources and start recording (call on the process's event loop)."""
        await self.sources.open()
        await self.executor.start(self._on_done, self._on_stopped)
        self._loops = [
            asyncio.create_task(self._announce_forever(), name="qb-announce"),
            asyncio.create_task(self._watch_forever(), name="qb-watch-runs"),
        ]

    async def run(self, items: Sequence[WorkItem]) -> None:
        """Run these sub-queries to their end, and return once their outcomes are written
        and announced.

        Each one that ended is announced once its outcome is written, without waiting for
        the rest of the chunk: the leader hands its slot to the next sub-query at once. A
        sub-query already running here (a copy of its message delivered again) is not run a
        second time: this chunk waits for the run under way.
        """
        if not items:
            return
        chunk = _Chunk({item.query_id for item in items})
        fresh = [item for item in items if item.query_id not in self._running]
        for item in items:
            self._chunks.setdefault(item.query_id, []).append(chunk)
        for item in fresh:
            self._running[item.query_id] = item
        self.executor.submit(fresh)
        await chunk.ended.wait()

    def _on_done(self, items: Sequence[WorkItem]) -> None:
        self._ended.extend(items)
        self._wake.set()

    def _on_stopped(self, batch_ids: Sequence[str]) -> None:
        self._stopped.extend(batch_ids)

    async def _announce_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ended, self._ended = self._ended, []
            # Runs that end while this group is written go out with the next one.
            await self.executor.drain()
            stopped, self._stopped = self._stopped, []
            for item in ended:
                self._running.pop(item.query_id, None)
            try:
                self.announce(ended, stopped)
            except Exception:  # the leader's reconciliation finds them ended instead
                log.exception("could not announce %d finished sub-queries", len(ended))
            for item in ended:
                for chunk in self._chunks.pop(item.query_id, ()):
                    chunk.waiting.discard(item.query_id)
                    if not chunk.waiting:
                        chunk.ended.set()

    async def _watch_forever(self) -> None:
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            running = list(self._running.values())
            if not running:
                continue
            try:
                await self._let_go_of_lost(running)
                if time.monotonic() - last_renewal > self.settings.lease_seconds / 3:
                    await self.store.runs.renew_leases(
                        running, time.time() + self.settings.lease_seconds
                    )
                    last_renewal = time.monotonic()
            except StoreUnavailable as exc:
                # The runs go on; what they could not record is retried by the store's
                # return, or their leases lapse and the sub-queries run again.
                log.warning("could not check or renew %d runs: %s", len(running), exc)
            except Exception:  # the watcher outlives any one failure
                log.exception("watching %d runs failed", len(running))

    async def _let_go_of_lost(self, running: Sequence[WorkItem]) -> None:
        owned = await self.store.runs.still_owned([(i.query_id, i.attempt) for i in running])
        lost = [i.query_id for i in running if i.query_id not in owned]
        if lost:
            log.info("letting go of %d sub-queries cancelled or taken back", len(lost))
            await self.executor.cancel(lost)

    async def close(self) -> None:
        """Stop running, write what is pending and close the store and sources."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.executor.stop()
        await self.sources.close()
        self.store.close()
