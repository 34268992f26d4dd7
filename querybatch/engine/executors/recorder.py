"""Group commit of run progress: many runs' starts and ends written in few transactions.

Runs hand their start and their outcome to the recorder and get a future back. One flusher
task writes everything that arrived since its last write in a single transaction, so under
load the cost of a commit is shared by many sub-queries, and when idle a write goes out at
once. While the store is unreachable a group is tried again for up to ``retry_seconds``
(a worker's lease), so that a short database outage costs no run its work; past that the
runs waiting on it get the error and their sub-queries run again once their leases lapse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from querybatch.engine.executors.lifecycle import log_discarded, log_failures, log_stopped
from querybatch.errors import StoreUnavailable
from querybatch.store.records import Outcome, WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

RETRY_FIRST_DELAY = 0.25  # seconds before a group commit the store refused is tried again
RETRY_MAX_DELAY = 2.0

StoppedCallback = Callable[[list[str]], None]


class Recorder:
    """Collects run starts and outcomes and writes them in batches."""

    def __init__(
        self,
        store: Store,
        lease_seconds: float,
        on_stopped: StoppedCallback,
        retry_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds
        self.on_stopped = on_stopped
        self._started: list[tuple[WorkItem, float, asyncio.Future[bool]]] = []
        self._ended: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing: list[asyncio.Future[bool]] = []

    def start(self) -> None:
        """Start the flusher task on the running loop."""
        self._task = asyncio.create_task(self._flush_forever(), name="qb-recorder")

    def started(self, item: WorkItem) -> asyncio.Future[bool]:
        """Record that a run started; resolves to whether the run still owns its query."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._started.append((item, time.time(), future))
        self._wake.set()
        return future

    def finished(self, outcome: Outcome) -> asyncio.Future[bool]:
        """Record how a run ended; resolves to whether the outcome was applied."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._ended.append((outcome, future))
        self._wake.set()
        return future

    async def drain(self) -> None:
        """Return once everything handed to the recorder so far is written (or failed)."""
        futures = [f for _, _, f in self._started] + [f for _, f in self._ended]
        futures += self._flushing
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    async def close(self) -> None:
        """Write what is pending and stop the flusher."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._started or self._ended:
                await self._flush()
            if self._closing and not (self._started or self._ended):
                return

    async def _record(
        self,
        started: list[tuple[WorkItem, float, asyncio.Future[bool]]],
        ended: list[tuple[Outcome, asyncio.Future[bool]]],
    ) -> tuple[list[bool], list[bool], list[str]]:
        """Write one group, trying again while the store is unreachable for up to
        ``retry_seconds``: a database that is back within them loses no run's work."""
        gave_up_at = time.monotonic() + self.retry_seconds
        delay = RETRY_FIRST_DELAY
        while True:
            now = time.time()
            try:
                return await self.store.runs.record_runs(
                    [(item, at) for item, at, _ in started],
                    [outcome for outcome, _ in ended],
                    now + self.lease_seconds,
                    now,
                )
            except StoreUnavailable as exc:
                if self._closing or time.monotonic() + delay > gave_up_at:
                    raise
                log.warning(
                    "could not record %d run events, trying again in %.2f s: %s",
                    len(started) + len(ended),
                    delay,
                    exc,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    async def _flush(self) -> None:
        started, self._started = self._started, []
        ended, self._ended = self._ended, []
        self._flushing = [f for _, _, f in started] + [f for _, f in ended]
        try:
            began, applied, stopped = await self._record(started, ended)
        except Exception as exc:
            # The store stayed down: fail the futures so runs stop waiting; their sub-queries
            # keep their leases, which expire and put them back on the schedule.
            detail = getattr(exc, "description", None)
            log.error(
                "could not record %d run events: %s%s",
                len(started) + len(ended),
                exc,
                f" ({detail})" if detail else "",
            )
            for future in self._flushing:
                if not future.done():
                    future.set_exception(exc)
            return
        log_failures(outcome for (outcome, _), ok in zip(ended, applied, strict=True) if ok)
        log_discarded([outcome for (outcome, _), ok in zip(ended, applied, strict=True) if not ok])
        if stopped:
            self.on_stopped(stopped)
            # Before the futures resolve: a Celery worker's loop stops once they have.
            await log_stopped(self.store, stopped)
        # A run cancelled while it waited has cancelled its future: nobody wants the answer.
        for (_, _, future), ok in zip(started, began, strict=True):
            if not future.done():
                future.set_result(ok)
        for (_, future), ok in zip(ended, applied, strict=True):
            if not future.done():
                future.set_result(ok)
