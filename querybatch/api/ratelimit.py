"""Per-key request limits over fixed hourly windows.

Each request is charged to exactly one bucket: its key's once the key is authenticated,
whichever way the key arrived (header, query string, ``json=``, JSON or form body), else its
client address. A credential that does not authenticate never gets a bucket of its own, so
the buckets are bounded by the keys of the store plus the client addresses seen, and the
in-process limiter also caps their number.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from querybatch.errors import TooManyRequests

WINDOW_SECONDS = 3600
MAX_BUCKETS = 100_000
GATE_KEY = "qb_rate_gate"

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
    """The limiter of a single node: counters in this process, at most ``max_buckets``.

    Past the cap the bucket used least recently is forgotten (its count starts again), so a
    flood of new client addresses costs bounded memory and evicts idle callers first.
    """

    def __init__(self, limit: int, max_buckets: int = MAX_BUCKETS) -> None:
        self.limit = limit
        self.max_buckets = max_buckets
        self._window = 0
        self._counts: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    async def hit(self, bucket: str, *, count: bool = True) -> Window:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._counts = window, OrderedDict()
        used = self._counts.get(bucket, 0)
        allowed = used < self.limit
        if count and allowed:
            used += 1
            self._counts[bucket] = used
            self._counts.move_to_end(bucket)
            while len(self._counts) > self.max_buckets:
                self._counts.popitem(last=False)
        reset_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Window(self.limit, max(0, self.limit - used), reset_after, allowed)


class RedisRateLimiter:
    """The limiter of a deployment: one counter per bucket and hour in the shared Redis.

    If Redis cannot be reached the request is let through (and the failure logged): a
    rate limit is no reason to stop serving. Counters expire with their window.
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


class RateGate:
    """Charges one request to one bucket, once, and remembers the window for the headers.

    The authorization dependency charges the key it authenticated (or the client address
    when authentication failed); routes reached by a signed link charge the address; the
    edge middleware charges the address of any other request when its response starts.
    """

    def __init__(self, limiter: RateLimiter, address: str, *, counted: bool = True) -> None:
        self.limiter = limiter
        self.address = address
        self.counted = counted
        self.window: Window | None = None

    async def charge_key(self, key_id: str) -> None:
        """Count the request to key ``key_id``; TooManyRequests when its window is used up."""
        await self._charge("key:" + key_id)

    async def charge_address(self) -> None:
        """Count the request to its client address; TooManyRequests when that is used up."""
        await self._charge(self.address)

    async def settle(self) -> Window:
        """The window charged, charging the client address if nothing was charged yet."""
        if self.window is None:
            self.window = await self.limiter.hit(self.address, count=self.counted)
        return self.window

    async def _charge(self, bucket: str) -> None:
        if self.window is None:
            self.window = await self.limiter.hit(bucket, count=self.counted)
        if not self.window.allowed:
            raise TooManyRequests(
                "Rate limit exceeded. Retry later.",
                retry_after=self.window.reset_after,
                description=f"At most {self.window.limit} requests per hour are allowed "
                + ("for this key." if bucket.startswith("key:") else "from this address."),
            )


def gate_of(scope: MutableMapping[str, Any]) -> RateGate:
    """The request's gate, put in its scope by the edge middleware."""
    gate: RateGate = scope["state"][GATE_KEY]
    return gate


def address_bucket(client: tuple[str, int] | None) -> str:
    """The bucket of a client address (see :func:`host_bucket`)."""
    return host_bucket(client[0] if client else "")


@lru_cache(maxsize=4096)
def host_bucket(host: str) -> str:
    """The bucket of a client address: the address, or its /64 network for IPv6.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it
    start afresh at will (and fill the limiter with buckets).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"
