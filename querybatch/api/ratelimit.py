"""Per-key request limits over fixed hourly windows.

Each request is charged to exactly one bucket: its key's once the key is authenticated,
whichever way the key arrived (header, query string, ``json=``, JSON or form body), else its
client address. A credential that does not authenticate never gets a bucket of its own, so
the buckets are bounded by the keys of the store plus the client addresses seen, and the
in-process limiter also caps their number.

Scaled out, the counts live in Redis; while Redis cannot be reached each node counts on its
own, so a deployment is never left without a limit.
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

from querybatch import logs
from querybatch.errors import TooManyRequests

WINDOW_SECONDS = 3600
MAX_BUCKETS = 100_000
GATE_KEY = "qb_rate_gate"
# Short enough that the shared counts are back soon after Redis is, long enough that an
# outage costs one attempt (and at most one request's wait on the timeouts) per interval.
REDIS_RETRY_SECONDS = 2.0

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

    It is the embedded server's limiter, and a scaled-out node's while Redis is unreachable.
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
        window = self._current(now)
        used = self._counts.get(bucket, 0)
        allowed = used < self.limit
        if count and allowed:
            used += 1
            self._store(bucket, used)
        reset_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Window(self.limit, max(0, self.limit - used), reset_after, allowed)

    def remember(self, bucket: str, used: int) -> None:
        """Raise ``bucket``'s count in this window to ``used`` (counted elsewhere) if lower."""
        self._current(time.time())
        if used > self._counts.get(bucket, 0):
            self._store(bucket, used)

    def _current(self, now: float) -> int:
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._counts = window, OrderedDict()
        return window

    def _store(self, bucket: str, used: int) -> None:
        self._counts[bucket] = used
        self._counts.move_to_end(bucket)
        while len(self._counts) > self.max_buckets:
            self._counts.popitem(last=False)


class RedisRateLimiter:
    """The limiter of a deployment: one counter per bucket and hour in the shared Redis.

    While Redis cannot be reached, this node limits on its own with a
    :class:`MemoryRateLimiter` of the same limit, which starts from the counts the node last
    read from Redis: a bucket gets at most the limit once per node, never an unlimited
    number of requests. After a failure Redis is left alone for ``retry_after`` seconds, so
    requests during an outage are answered at once instead of waiting on its timeouts; then
    one request tries it again, and the first that succeeds brings the node back to the
    shared counts. An outage is logged when it starts and when it ends, not per request.
    Counters expire with their window.
    """

    def __init__(
        self,
        limit: int,
        url: str,
        prefix: str = "qb:rl",
        *,
        retry_after: float = REDIS_RETRY_SECONDS,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.limit = limit
        self.prefix = prefix
        self.retry_after = retry_after
        self._fallback = MemoryRateLimiter(limit)
        # Waiting between attempts is the breaker's job (redis-py would retry ten times with
        # back-off); one retry at once still replaces a pooled connection Redis has closed.
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 1)
        )
        self._down_since: float | None = None  # time.monotonic() of the first failure
        self._retry_at = 0.0
        self._trying = False

    async def hit(self, bucket: str, *, count: bool = True) -> Window:
        import redis

        if self._down_since is not None and (self._trying or time.monotonic() < self._retry_at):
            return await self._fallback.hit(bucket, count=count)
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        # While Redis is down, this request is the one that tries it: the others go on
        # with the fallback rather than queue up behind the same timeouts.
        probing = self._down_since is not None
        if probing:
            self._trying = True
        try:
            used = await self._shared_count(f"{self.prefix}:{window}:{bucket}", count)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return await self._fallback.hit(bucket, count=count)
        finally:
            if probing:
                self._trying = False
        self._answered()
        self._fallback.remember(bucket, used)
        allowed = used <= self.limit if count else used < self.limit
        reset_after = int((window + 1) * WINDOW_SECONDS - now) + 1
        return Window(self.limit, max(0, self.limit - used), reset_after, allowed)

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.aclose()

    async def _shared_count(self, key: str, count: bool) -> int:
        if count:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS + 60)
                used, _ = await pipe.execute()
        else:
            used = await self._redis.get(key) or 0
        return int(used)

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._retry_at = now + self.retry_after
        if self._down_since is None:
            self._down_since = now
            logs.event(
                log,
                "rate_limit_store_unreachable",
                "rate limit store unreachable ({error}); this node limits on its own and "
                "tries it again every {retry_after:g} s",
                level=logging.WARNING,
                error=str(exc) or type(exc).__name__,
                retry_after=self.retry_after,
            )

    def _answered(self) -> None:
        if self._down_since is not None:
            down = time.monotonic() - self._down_since
            self._down_since = None
            logs.event(
                log,
                "rate_limit_store_back",
                "rate limit store reachable again after {seconds:.1f} s; limits are shared again",
                level=logging.INFO,
                seconds=round(down, 1),
            )


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
