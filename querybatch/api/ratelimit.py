"""Per-key request limits over fixed hourly windows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Window:
    """Where a caller stands in the current window."""

    limit: int
    remaining: int
    reset_after: int
    allowed: bool


class RateLimiter(Protocol):
    """Counts requests per bucket (a key, or a client address) and hour."""

    limit: int

    async def hit(self, bucket: str, *, count: bool = True) -> Window:
        """Count one request of ``bucket`` (unless ``count`` is false) and say if it may go on."""
        ...


class MemoryRateLimiter:
    """The limiter of a single node: counters in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._window = 0
        self._counts: dict[str, int] = {}

    async def hit(self, bucket: str, *, count: bool = True) -> Window:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._counts = window, {}
        used = self._counts.get(bucket, 0)
        allowed = used < self.limit
        if count and allowed:
            used += 1
            self._counts[bucket] = used
        reset_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Window(self.limit, max(0, self.limit - used), reset_after, allowed)
