"""The in-process executor: every sub-query is an asyncio task of this server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import Row
from querybatch.engine.executors.base import DoneCallback, Executor, WorkerCount
from querybatch.engine.executors.recorder import Recorder, StoppedCallback
from querybatch.engine.executors.runner import RetryPolicy, Runner
from querybatch.engine.executors.throttle import SourceThrottle
from querybatch.errors import StoreUnavailable
from querybatch.settings import Settings
from querybatch.store.records import Outcome, WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)


def build_local_executor(
    settings: Settings,
    store: Store,
    sources: SourceRegistry,
    slots: int,
    *,
    confirm_start: bool = False,
) -> LocalExecutor:
    """An in-process executor whose runs write their chunks and outcomes to ``store``
    (see :class:`LocalExecutor` for ``confirm_start``)."""

    async def write_chunk(result_id: str, seq: int, rows: Sequence[Row]) -> None:
        await store.results.write_chunk(result_id, seq, rows, time.time())

    async def drop_chunks(result_id: str) -> None:
        await store.results.drop(result_id)

    runner = Runner(
        sources,
        write_chunk,
        drop_chunks,
        RetryPolicy(retries=settings.retries, backoff=settings.retry_backoff),
        SourceThrottle(),
    )
    return LocalExecutor(
        runner,
        store,
        settings.lease_seconds,
        slots,
        confirm_start=confirm_start,
        retry_seconds=settings.lease_seconds,
    )


class LocalExecutor(Executor):
    """Runs sub-queries as tasks on the running event loop, up to ``slots`` at once.

    Identical sub-queries of one tenant that would run at the same time run once: the later
    ones wait for the first and share its result.

    A run starts at once and its start is recorded meanwhile. With ``confirm_start`` (a
    Celery worker) it waits until the store says it owns its sub-query: a message the broker
    delivered twice, or one a stopped worker held while it was handed out again, then costs
    a look in the store instead of a second call to the data source.
    """

    prefetch = True
    in_process = True
    scale_out = False

    def __init__(
        self,
        runner: Runner,
        store: Store,
        lease_seconds: float,
        slots: int,
        *,
        confirm_start: bool = False,
        retry_seconds: float = 0.0,
    ) -> None:
        self.runner = runner
        self.confirm_start = confirm_start
        self.recorder = Recorder(store, lease_seconds, self._batches_stopped, retry_seconds)
        self.slots = slots
        self._tasks: dict[int, tuple[WorkItem, asyncio.Task[None]]] = {}
        self._leaders: dict[tuple[str, str], asyncio.Future[Outcome | None]] = {}
        self._on_done: DoneCallback | None = None
        self._on_stopped: StoppedCallback | None = None

    @classmethod
    def preflight(cls, settings: Settings, store: Store) -> None:
        # A second embedded server on the same database would re-run this one's work.
        store.db.hold_exclusive_lock()

    async def recover(self, store: Store, max_attempts: int) -> None:
        store.db.hold_exclusive_lock()
        # Nothing runs in this process yet: whatever the store says is claimed or running
        # was lost with the previous process and runs again, from scratch.
        moved = await store.runs.requeue(time.time(), everything=True, max_attempts=max_attempts)
        if moved:
            log.info("put %d interrupted sub-queries back on the schedule", moved)

    async def start(self, on_done: DoneCallback, on_stopped: StoppedCallback) -> None:
        self._on_done = on_done
        self._on_stopped = on_stopped
        self.recorder.start()

    def capacity(self) -> int:
        return self.slots - len(self._tasks)

    def submit(self, items: Sequence[WorkItem]) -> None:
        for item in items:
            task = asyncio.create_task(self._run(item), name=f"qb-run-{item.query_id}")
            self._tasks[item.query_id] = (item, task)

    async def cancel(self, query_ids: Collection[int]) -> None:
        for query_id in query_ids:
            entry = self._tasks.get(query_id)
            if entry is not None:
                entry[1].cancel()

    def running(self) -> list[WorkItem]:
        return [item for item, _ in self._tasks.values()]

    async def workers(self) -> WorkerCount:
        # The workers are this process's own slots: alive for as long as it answers.
        return WorkerCount(self.slots, 0.0)

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.recorder.close()

    async def drain(self) -> None:
        """Return once the outcomes of the runs that ended so far are written (or failed)."""
        await self.recorder.drain()

    def _batches_stopped(self, batch_ids: list[str]) -> None:
        if self._on_stopped is not None:
            self._on_stopped(batch_ids)

    async def _run(self, item: WorkItem) -> None:
        try:
            started = self.recorder.started(item)
            if self.confirm_start and not await started:
                return
            key = (item.account, item.fingerprint)
            leader = self._leaders.get(key)
            outcome = await self._follow(item, leader) if leader is not None else None
            if outcome is None:
                outcome = await self._lead(item, key, started)
            elif await started:
                self.recorder.finished(outcome)
        except asyncio.CancelledError:
            pass
        except StoreUnavailable:  # the recorder said so once for the group commit
            pass  # the lease lapses and the sub-query runs again
        except Exception:
            log.exception("sub-query %s could not be recorded", item.query_id)
        finally:
            # The slot is handed on now; the outcome goes out with the next group commit.
            self._tasks.pop(item.query_id, None)
            if self._on_done is not None:
                self._on_done([item])

    async def _lead(
        self, item: WorkItem, key: tuple[str, str], started: asyncio.Future[bool]
    ) -> Outcome | None:
        """Run the sub-query; identical ones arriving meanwhile will share its outcome."""
        shared: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._leaders[key] = shared
        try:
            outcome = await self.runner.run(item)
            if not await started:
                shared.set_result(None)
                return None
        except BaseException:
            if not shared.done():
                shared.set_result(None)
            raise
        finally:
            if self._leaders.get(key) is shared:
                del self._leaders[key]
        written = self.recorder.finished(outcome)

        def share(done: asyncio.Future[bool]) -> None:
            ok = not done.cancelled() and done.exception() is None and done.result()
            if not shared.done():
                shared.set_result(outcome if ok and outcome.result is not None else None)

        written.add_done_callback(share)
        return outcome

    @staticmethod
    async def _follow(item: WorkItem, leader: asyncio.Future[Outcome | None]) -> Outcome | None:
        """Wait for an identical run and take its result, if it succeeded."""
        shared = await asyncio.shield(leader)
        if shared is None or shared.result is None:
            return None
        return Outcome(
            query_id=item.query_id,
            batch_id=item.batch_id,
            attempt=item.attempt,
            status=shared.status,
            end_time=shared.end_time,
            ds_id=shared.ds_id,
            shared_result_id=shared.result.id,
            excluded_accounts=shared.excluded_accounts,
        )
