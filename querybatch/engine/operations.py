"""Health and metrics: how this node and the whole deployment are doing."""

from __future__ import annotations

from dataclasses import dataclass

from querybatch.engine.service import Engine
from querybatch.store.store import Store


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the store answers and takes writes, and whether the executor answers."""

    store_reachable: bool
    write_problem: str | None
    executor_reachable: bool

    @property
    def healthy(self) -> bool:
        """Whether every part is fine."""
        return self.store_reachable and self.write_problem is None and self.executor_reachable


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


class Operations:
    """The one door to health and metrics figures."""

    def __init__(self, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine

    async def health(self) -> Health:
        """Check the store (with a real write, at most every few seconds; see
        ``Database.write_problem``) and the executor."""
        db = self.store.db
        store_ok = await db.read(db.ping)
        write_problem = await db.write_problem() if store_ok else None
        executor_ok = await self.engine.executor.healthy()
        return Health(store_ok, write_problem, executor_ok)

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
        )
