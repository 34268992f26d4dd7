"""The executor contract: the scheduler hands claimed sub-queries over and hears when they end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import ClassVar

from querybatch.store.records import WorkItem

DoneCallback = Callable[[Sequence[WorkItem]], None]


class Executor(ABC):
    """Runs claimed sub-queries somewhere and reports when each run has ended."""

    prefetch: ClassVar[bool] = False
    """Whether the scheduler may claim sub-queries ahead of free slots for this executor."""

    @abstractmethod
    async def start(self, on_done: DoneCallback) -> None:
        """Get ready to run sub-queries; ``on_done`` is called (on the loop) as runs end."""

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

    def adopt(self, items: Sequence[WorkItem]) -> None:  # noqa: B027 - optional hook
        """Track sub-queries another node handed out (this node just became the leader)."""

    def forget(self) -> None:  # noqa: B027 - optional hook
        """Stop tracking handed-out sub-queries (this node no longer leads)."""
