"""The in-process rate limiter and the per-request gate: bounded memory, one bucket each."""

from __future__ import annotations

import secrets

import pytest

from querybatch.api.ratelimit import MemoryRateLimiter, RateGate, address_bucket
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
