"""Health and metrics: how this node and the whole deployment are doing."""

from __future__ import annotations

import time
from dataclasses import dataclass

from querybatch.engine.executors.base import WorkerCount
from querybatch.engine.service import Engine
from querybatch.store.store import Store

# /healthz is polled: the worker count and queue depth are read at most this often.
WORK_READING_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the store answers and takes writes, whether the executor answers, and
    whether any worker is alive to take the sub-queries waiting."""

    store_reachable: bool
    write_problem: str | None
    executor_reachable: bool
    workers: WorkerCount
    queued: int

    @property
    def healthy(self) -> bool:
        """Whether every part this node needs answers (else it cannot serve)."""
        return self.store_reachable and self.write_problem is None and self.executor_reachable

    @property
    def degraded(self) -> bool:
        """Whether work waits and no worker is alive to take it (this node itself is fine)."""
        return self.queued > 0 and self.workers.alive == 0


@dataclass(frozen=True, slots=True)
class SourceTotal:
    """Sub-queries of one data source that ended with one status, and their run time."""

    ds_id: str
    status: str
    finished: int
    run_seconds: float


@dataclass(frozen=True, slots=True)
class Figures:
    """The metrics of one scrape: the deployment's queue and this node's share of it."""

    waiting: int
    running: int
    active_batches: int
    node_in_flight: int
    node_leads: bool
    finished: list[SourceTotal]
    workers: WorkerCount


class Operations:
    """The one door to health and metrics figures."""

    def __init__(self, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self._work: tuple[float, WorkerCount, int] | None = None

    async def health(self) -> Health:
        """Check the store (with a real write, at most every few seconds; see
        ``Database.write_problem``), the executor, and the workers and queue (read at most
        every ``WORK_READING_SECONDS``)."""
        db = self.store.db
        store_ok = await db.read(db.ping)
        write_problem = await db.write_problem() if store_ok else None
        executor_ok = await self.engine.executor.healthy()
        if not (store_ok and executor_ok):
            # Unavailable anyway: no more waiting on what does not answer.
            return Health(store_ok, write_problem, executor_ok, WorkerCount(0, None), 0)
        workers, queued = await self._work_reading()
        return Health(store_ok, write_problem, executor_ok, workers, queued)

    async def _work_reading(self) -> tuple[WorkerCount, int]:
        now = time.monotonic()
        if self._work is not None and now - self._work[0] < WORK_READING_SECONDS:
            return self._work[1], self._work[2]
        workers = await self.engine.executor.workers()
        queued = (await self.store.upkeep.queue_totals())[0]
        self._work = (now, workers, queued)
        return workers, queued

    async def figures(self) -> Figures:
        """Queue depth, running sub-queries and finished sub-queries per data source and
        status (read from the shared store), and this node's own counts."""
        upkeep = self.store.upkeep
        waiting, running, active = await upkeep.queue_totals()
        totals = await upkeep.source_totals()
        return Figures(
            waiting=waiting,
            running=running,
            active_batches=active,
            node_in_flight=sum(self.engine.scheduler.tenant_in_flight.values()),
            node_leads=self.engine.leads(),
            finished=[SourceTotal(*row) for row in totals],
            workers=await self.engine.executor.workers(),
        )
