"""Waiting for batches to stop (a data request waiting up to its ``sync_timeout``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable


class Waiters:
    """Futures per batch id, resolved when this node learns that the batch stopped.

    Batches stopped by another node or a Celery worker are not announced here, so waiting
    also polls the store (``is_stopped``) every ``poll_seconds``.
    """

    def __init__(self, poll_seconds: float = 0.5) -> None:
        self.poll_seconds = poll_seconds
        self._waiting: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def notify(self, batch_ids: Iterable[str]) -> None:
        """These batches stopped: wake everyone waiting for them."""
        for batch_id in batch_ids:
            for future in self._waiting.pop(batch_id, ()):
                if not future.done():
                    future.set_result(None)

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
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[batch_id].add(future)
            try:
                await asyncio.wait_for(future, min(left, self.poll_seconds))
                return True
            except TimeoutError:
                pass
            finally:
                waiting = self._waiting.get(batch_id)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiting[batch_id]
