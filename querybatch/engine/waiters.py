"""Waiting for batches to stop (a data request waiting up to its ``sync_timeout``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable


class Waiters:
    """Futures per batch id, resolved when this node learns that the batch stopped.

    A batch whose last sub-query a Celery worker ended is stopped by the worker's commit, not
    here: the leading node hears that its sub-queries ended (``look_again``) and whoever
    waits reads the store again at once. Batches stopped through another node are not heard
    of at all, so waiting also polls the store (``is_stopped``) every ``poll_seconds``.
    """

    def __init__(self, poll_seconds: float = 0.5) -> None:
        self.poll_seconds = poll_seconds
        self._waiting: dict[str, set[asyncio.Future[bool]]] = defaultdict(set)

    def notify(self, batch_ids: Iterable[str]) -> None:
        """These batches stopped: wake everyone waiting for them."""
        self._wake(batch_ids, stopped=True)

    def look_again(self, batch_ids: Iterable[str]) -> None:
        """Sub-queries of these batches ended elsewhere: whoever waits reads the store again
        (a worker's commit may have stopped the batch)."""
        self._wake(batch_ids, stopped=False)

    def _wake(self, batch_ids: Iterable[str], *, stopped: bool) -> None:
        if not self._waiting:
            return
        for batch_id in batch_ids:
            for future in self._waiting.pop(batch_id, ()):
                if not future.done():
                    future.set_result(stopped)

    async def wait(
        self, batch_id: str, timeout: float, is_stopped: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Wait up to ``timeout`` seconds for the batch to stop; True if it did."""
        deadline = time.monotonic() + timeout
        while True:
            if await is_stopped():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._waiting[batch_id].add(future)
            try:
                if await asyncio.wait_for(future, min(left, self.poll_seconds)):
                    return True
            except TimeoutError:
                pass
            finally:
                waiting = self._waiting.get(batch_id)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiting[batch_id]
