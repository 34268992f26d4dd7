"""The executor contract: the scheduler hands claimed sub-queries over and hears when they end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

from querybatch.engine.executors.recorder import StoppedCallback
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

DoneCallback = Callable[[Sequence[WorkItem]], None]


@dataclass(frozen=True, slots=True)
class WorkerCount:
    """How many worker processes are alive, and how many seconds ago any was last seen
    (None: never, as far as anyone remembers)."""

    alive: int
    last_seen_seconds: float | None


class Executor(ABC):
    """Runs claimed sub-queries somewhere and reports when each run has ended."""

    prefetch: ClassVar[bool] = False
    """Whether the scheduler may claim sub-queries ahead of free slots for this executor."""

    in_process: ClassVar[bool]
    """Whether sub-queries run in this process, so a claimed one starts at once (otherwise
    it may wait in a queue, and its claim lease is the longer ``queued_lease_seconds``)."""

    scale_out: ClassVar[bool]
    """Whether several server nodes share the store and its work: one of them leads the
    scheduling, and each resumes only the work it holds. Otherwise this node is alone on its
    store, and everything found unfinished there is its own."""

    @classmethod
    @abstractmethod
    def preflight(cls, settings: Settings, store: Store) -> None:
        """Fail with one clear error if a server cannot run this executor (before it listens)."""

    async def recover(self, store: Store, max_attempts: int) -> None:  # noqa: B027 - optional
        """Put right what a previous run of this node left in the store, before it starts."""

    @abstractmethod
    async def start(self, on_done: DoneCallback, on_stopped: StoppedCallback) -> None:
        """Get ready to run sub-queries; as runs end, ``on_done`` is called with them and
        ``on_stopped`` with the batches their ends stopped here (both on the loop)."""

    @abstractmethod
    def capacity(self) -> int:
        """How many more sub-queries it can take right now."""

    @abstractmethod
    def submit(self, items: Sequence[WorkItem]) -> None:
        """Start running these claimed sub-queries, in this order, without blocking."""

    @abstractmethod
    async def cancel(self, query_ids: Collection[int]) -> None:
        """Stop runs of these sub-queries, if running; their outcome is no longer wanted."""

    @abstractmethod
    def running(self) -> list[WorkItem]:
        """The sub-queries this executor is running (for lease renewal)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop every run and release resources; unfinished sub-queries are run again later."""

    async def healthy(self) -> bool:
        """Whether the executor can reach what it needs (the broker, for Celery)."""
        return True

    async def workers(self) -> WorkerCount:
        """The workers that run this executor's sub-queries, as far as this node can tell."""
        return WorkerCount(0, None)

    def adopt(self, items: Sequence[WorkItem]) -> None:  # noqa: B027 - optional hook
        """Track sub-queries another node handed out (this node just became the leader)."""

    def forget(self) -> None:  # noqa: B027 - optional hook
        """Stop tracking handed-out sub-queries (this node no longer leads)."""
