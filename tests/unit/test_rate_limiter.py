"""The in-process rate limiter and the per-request gate: bounded memory, one bucket each;
the Redis limiter: counts shared by the nodes, and limits kept on each node while Redis is
unreachable, trying it again only after a back-off."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from querybatch.api.ratelimit import MemoryRateLimiter, RateGate, RedisRateLimiter, address_bucket
from querybatch.errors import TooManyRequests


async def test_a_flood_of_new_buckets_keeps_the_limiter_within_its_cap() -> None:
    limiter = MemoryRateLimiter(limit=10, max_buckets=100)
    for _ in range(10_000):
        await limiter.hit("ip:" + secrets.token_hex(16))
    assert len(limiter) == 100


async def test_the_bucket_used_least_recently_is_the_one_forgotten() -> None:
    limiter = MemoryRateLimiter(limit=10, max_buckets=3)
    for bucket in ("a", "b", "c"):
        await limiter.hit(bucket)
    await limiter.hit("a")
    await limiter.hit("d")
    assert (await limiter.hit("a", count=False)).remaining == 8
    assert (await limiter.hit("b", count=False)).remaining == 10


async def test_looking_at_a_window_does_not_make_a_bucket() -> None:
    limiter = MemoryRateLimiter(limit=10)
    await limiter.hit("ip:192.0.2.1", count=False)
    assert len(limiter) == 0


async def test_a_gate_charges_one_bucket_only_once() -> None:
    limiter = MemoryRateLimiter(limit=10)
    gate = RateGate(limiter, "ip:192.0.2.1")
    await gate.charge_key("k1")
    await gate.charge_address()
    assert (await gate.settle()).remaining == 9
    assert (await limiter.hit("ip:192.0.2.1", count=False)).remaining == 10


async def test_a_gate_refuses_a_key_whose_window_is_used_up() -> None:
    limiter = MemoryRateLimiter(limit=1)
    await RateGate(limiter, "ip:192.0.2.1").charge_key("k1")
    with pytest.raises(TooManyRequests) as refused:
        await RateGate(limiter, "ip:192.0.2.2").charge_key("k1")
    assert refused.value.retry_after > 0


async def test_an_uncounted_request_only_reads_its_window() -> None:
    limiter = MemoryRateLimiter(limit=1)
    for _ in range(3):
        assert (await RateGate(limiter, "ip:a", counted=False).settle()).allowed


@pytest.mark.parametrize(
    ("client", "bucket"),
    [
        (("192.0.2.1", 5000), "ip:192.0.2.1"),
        (("2001:db8:1:2:3:4:5:6", 5000), "ip:2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::1", 5000), "ip:2001:db8:1:2::/64"),
        (("::ffff:192.0.2.1", 5000), "ip:192.0.2.1"),
        (("not an address", 0), "ip:unknown"),
        (None, "ip:unknown"),
    ],
)
def test_client_addresses_are_counted_per_host_and_ipv6_per_64_network(
    client: tuple[str, int] | None, bucket: str
) -> None:
    assert address_bucket(client) == bucket


# -- Redis, and its outages --------------------------------------------------------------------


class RedisSwitch:
    """A TCP proxy in front of a Redis that can be cut off: while cut, it hangs up on every
    connection (and has hung up on those it carried), as a Redis that went away would.

    Without a Redis behind it, it is always cut. ``connections`` counts the connections
    made to it, that is the attempts to reach Redis.
    """

    def __init__(self, redis_url: str | None = None) -> None:
        self.target = urlsplit(redis_url) if redis_url else None
        self.cut = self.target is None
        self.connections = 0
        self._carried: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port; the URL to reach Redis through this switch."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        if self.target is None:
            return f"redis://127.0.0.1:{port}/0"
        userinfo = self.target.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        return self.target._replace(netloc=netloc).geturl()

    def hang_up(self) -> None:
        """Cut Redis off: close the connections carried, refuse the next ones."""
        self.cut = True
        for writer in self._carried:
            writer.close()

    async def stop(self) -> None:
        """Hang up on everyone and wait until every connection is closed."""
        self.hang_up()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*self._handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.cut or self.target is None:
            writer.close()
            await writer.wait_closed()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        up_reader, up_writer = await asyncio.open_connection(
            self.target.hostname, self.target.port or 6379
        )
        self._carried |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._carried -= {writer, up_writer}
            self._handlers.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL at which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted after."""
    import redis.asyncio as aioredis

    prefix = "qbt:rl:" + uuid.uuid4().hex[:12]
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def node() -> AsyncIterator[Callable[..., RedisRateLimiter]]:
    """Makes the Redis limiters of API nodes (``url``, then keywords), closed after the test."""
    made: list[RedisRateLimiter] = []

    def make(url: str, *, limit: int = 3, **options: Any) -> RedisRateLimiter:
        made.append(RedisRateLimiter(limit, url, **options))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.close()


@pytest.fixture
async def switch() -> AsyncIterator[Callable[[str | None], RedisSwitch]]:
    """Makes :class:`RedisSwitch` proxies (start them), stopped after the test."""
    made: list[RedisSwitch] = []

    def make(redis_url: str | None = None) -> RedisSwitch:
        made.append(RedisSwitch(redis_url))
        return made[-1]

    yield make
    for proxy in made:
        await proxy.stop()


async def test_without_redis_each_bucket_is_still_limited_on_the_node(
    node: Callable[..., RedisRateLimiter], dead_redis_url: str
) -> None:
    limiter = node(dead_redis_url, limit=3)
    windows = [await limiter.hit("key:k1") for _ in range(4)]
    assert [window.allowed for window in windows] == [True, True, True, False]
    assert [window.remaining for window in windows] == [2, 1, 0, 0]
    assert (await limiter.hit("key:k2")).allowed


async def test_while_redis_is_down_requests_do_not_try_it_until_the_back_off_ends(
    node: Callable[..., RedisRateLimiter], switch: Callable[[str | None], RedisSwitch]
) -> None:
    gone = switch(None)
    limiter = node(await gone.start(), retry_after=3600)
    await limiter.hit("key:k1")
    tried = gone.connections
    assert tried > 0
    for _ in range(5):
        await limiter.hit("key:k1")
        await limiter.hit("ip:192.0.2.1", count=False)
    assert gone.connections == tried


async def test_after_the_back_off_the_next_request_tries_redis_again(
    node: Callable[..., RedisRateLimiter], switch: Callable[[str | None], RedisSwitch]
) -> None:
    gone = switch(None)
    limiter = node(await gone.start(), retry_after=0)
    seen = []
    for _ in range(3):
        await limiter.hit("key:k1")
        seen.append(gone.connections)
    assert 0 < seen[0] < seen[1] < seen[2]


async def test_nodes_share_their_counts_through_redis(
    node: Callable[..., RedisRateLimiter], redis_url: str, prefix: str
) -> None:
    one, two = node(redis_url, prefix=prefix), node(redis_url, prefix=prefix)
    allowed = [(await limiter.hit("key:k1")).allowed for limiter in (one, two, one, two)]
    assert allowed == [True, True, True, False]
    assert (await two.hit("key:k2")).remaining == 2


async def test_a_node_that_loses_redis_goes_on_from_the_counts_it_last_read(
    node: Callable[..., RedisRateLimiter],
    switch: Callable[[str | None], RedisSwitch],
    redis_url: str,
    prefix: str,
) -> None:
    proxy = switch(redis_url)
    limiter = node(await proxy.start(), prefix=prefix)
    await limiter.hit("key:k1")
    await limiter.hit("key:k1")
    proxy.hang_up()
    assert (await limiter.hit("key:k1")).allowed
    assert not (await limiter.hit("key:k1")).allowed


async def test_an_outage_is_logged_when_it_starts_and_when_it_ends_and_counts_are_shared_again(
    node: Callable[..., RedisRateLimiter],
    switch: Callable[[str | None], RedisSwitch],
    redis_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="querybatch.api.ratelimit")
    proxy = switch(redis_url)
    limiter = node(await proxy.start(), prefix=prefix, retry_after=0)
    other = node(redis_url, prefix=prefix)
    await limiter.hit("key:k1")
    proxy.hang_up()
    for _ in range(5):
        await limiter.hit("key:k1")
    proxy.cut = False
    await limiter.hit("key:k1")
    await limiter.hit("key:k1")
    events = [getattr(record, "event", None) for record in caplog.records]
    assert events == ["rate_limit_store_unreachable", "rate_limit_store_back"]
    assert caplog.records[0].levelno == logging.WARNING
    assert (await other.hit("key:k1", count=False)).remaining == 0


async def test_while_one_request_tries_redis_again_the_others_do_not(
    node: Callable[..., RedisRateLimiter], switch: Callable[[str | None], RedisSwitch]
) -> None:
    gone = switch(None)
    limiter = node(await gone.start(), retry_after=0)
    await limiter.hit("key:k1")
    one_attempt = gone.connections
    windows = await asyncio.gather(*(limiter.hit(f"key:k{n}") for n in range(10)))
    assert all(window.allowed for window in windows)
    assert gone.connections == 2 * one_attempt
