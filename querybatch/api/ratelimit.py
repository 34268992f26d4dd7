"""Per-key request limits over fixed hourly windows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 3600

log = logging.getLogger(__name__)


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


class RedisRateLimiter:
    """The limiter of a deployment: one counter per bucket and hour in the shared Redis.

    If Redis cannot be reached the request is let through (and the failure logged): a
    rate limit is no reason to stop serving.
    """

    def __init__(self, limit: int, url: str, prefix: str = "qb:rl") -> None:
        import redis.asyncio as aioredis

        self.limit = limit
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    async def hit(self, bucket: str, *, count: bool = True) -> Window:
        import redis

        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"{self.prefix}:{window}:{bucket}"
        try:
            if count:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS + 60)
                    used, _ = await pipe.execute()
            else:
                used = int(await self._redis.get(key) or 0)
        except (redis.RedisError, OSError) as exc:
            log.warning("rate limit store unreachable, letting the request through: %s", exc)
            used = 0
        used = int(used)
        allowed = used <= self.limit if count else used < self.limit
        reset_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Window(self.limit, max(0, self.limit - used), reset_after, allowed)

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()
