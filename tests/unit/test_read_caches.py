"""Coalesced reads and the result chunk cache: shared answers, never stale writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from querybatch.engine.coalesce import Coalescer
from querybatch.store.results import ChunkCache


class CountingRead:
    """A store read that answers how many times it has been called."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.calls


async def test_reads_of_one_key_in_flight_together_run_once() -> None:
    calls = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    coalescer = Coalescer()
    waiting = [asyncio.create_task(coalescer.read("k", read)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert calls == 1
    # Once answered, the next read reads again.
    assert await coalescer.read("k", read) == 2


async def test_different_keys_are_read_separately() -> None:
    coalescer = Coalescer()

    async def value(v: str) -> str:
        await asyncio.sleep(0.01)
        return v

    a, b = await asyncio.gather(
        coalescer.read("a", lambda: value("a")), coalescer.read("b", lambda: value("b"))
    )
    assert (a, b) == ("a", "b")


async def test_a_read_after_an_invalidation_does_not_join_the_older_one() -> None:
    coalescer = Coalescer()
    gate = asyncio.Event()
    reads = []

    async def read() -> int:
        reads.append(1)
        await gate.wait()
        return len(reads)

    older = asyncio.create_task(coalescer.read("batch", read))
    await asyncio.sleep(0)
    coalescer.invalidate("batch")  # e.g. this node just cancelled the batch
    newer = asyncio.create_task(coalescer.read("batch", read))
    await asyncio.sleep(0)
    gate.set()
    assert len(reads) == 2
    assert await newer == 2
    await older


async def test_a_failed_read_fails_every_waiter_and_is_not_remembered() -> None:
    coalescer = Coalescer()
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise RuntimeError("store down")

    waiting = [asyncio.create_task(coalescer.read("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def fine() -> int:
        return 7

    assert await coalescer.read("k", fine) == 7


def test_the_chunk_cache_answers_only_when_it_holds_every_chunk_asked_for() -> None:
    cache = ChunkCache(budget=1000)
    cache.put("r", 0, [b"a" * 10, b"b" * 10])
    assert cache.get("r", 0, 1) == [b"a" * 10, b"b" * 10]
    assert cache.get("r", 0, 2) is None
    assert cache.get("other", 0, 0) is None


def test_the_chunk_cache_stays_within_its_budget_evicting_the_oldest() -> None:
    cache = ChunkCache(budget=800)
    for seq in range(20):
        cache.put("r", seq, [bytes([seq]) * 100])
    assert cache.get("r", 19, 19) == [bytes([19]) * 100]
    assert cache.get("r", 0, 0) is None
    kept = sum(cache.get("r", s, s) is not None for s in range(20))
    assert kept * 100 <= 800


@pytest.mark.parametrize("size", [200, 1000])
def test_payloads_too_big_for_the_cache_are_not_kept(size: int) -> None:
    cache = ChunkCache(budget=800)
    cache.put("r", 0, [b"x" * size])
    assert cache.get("r", 0, 0) is None


async def test_a_fresh_answer_serves_later_reads_until_invalidated() -> None:
    read = CountingRead()
    fresh = Coalescer(fresh_for=60)
    assert [await fresh.read("batch", read) for _ in range(3)] == [1, 1, 1]
    fresh.invalidate("batch")  # this node cancelled the batch: the next poll reads again
    assert await fresh.read("batch", read) == 2
    unkept = Coalescer()
    assert [await unkept.read("batch", read) for _ in range(2)] == [3, 4]


async def test_fresh_answers_expire_and_their_number_is_bounded() -> None:
    read = CountingRead()
    brief = Coalescer(fresh_for=0.01)
    assert await brief.read("k", read) == 1
    await asyncio.sleep(0.02)
    assert await brief.read("k", read) == 2
    small = Coalescer(fresh_for=60, max_kept=2)
    for key in ("a", "b", "c"):
        await small.read(key, read)
    assert await small.read("a", read) == 6  # the oldest was dropped for "c"
    assert await small.read("c", read) == 5


class Shown:
    """An answer showing one batch, as a kept batch or query does."""

    def __init__(self, batch: str, version: int) -> None:
        self.batch = batch
        self.version = version


async def test_forgetting_a_tag_drops_every_answer_of_it_and_no_other() -> None:
    versions = {"b1": 0, "b2": 0}

    def reader(batch: str) -> Callable[[], Awaitable[Shown]]:
        async def read() -> Shown:
            versions[batch] += 1
            return Shown(batch, versions[batch])

        return read

    fresh = Coalescer(fresh_for=60, tag_of=lambda answer: answer.batch)
    for key, batch in [(("t1", "b1"), "b1"), (("t2", "b1"), "b1"), (("t1", "b2"), "b2")]:
        await fresh.read(key, reader(batch))
    assert (await fresh.read(("t1", "b1"), reader("b1"))).version == 1  # kept: no new read
    fresh.forget(["b1"])  # b1 stopped
    assert (await fresh.read(("t1", "b1"), reader("b1"))).version == 3
    assert (await fresh.read(("t2", "b1"), reader("b1"))).version == 4
    assert (await fresh.read(("t1", "b2"), reader("b2"))).version == 1  # still kept


async def test_a_read_under_way_when_its_tag_is_forgotten_is_not_kept_or_joined() -> None:
    gate = asyncio.Event()
    reads = []

    async def read() -> Shown:
        reads.append(1)
        version = len(reads)
        if version == 1:
            await gate.wait()  # read before the batch stopped, answered after
        return Shown("b1", version)

    fresh = Coalescer(fresh_for=60, tag_of=lambda answer: answer.batch)
    older = asyncio.create_task(fresh.read("k", read))
    await asyncio.sleep(0)
    fresh.forget(["b1"])
    newer = await fresh.read("k", read)  # does not wait for the older read
    gate.set()
    assert ((await older).version, newer.version) == (1, 2)
    assert (await fresh.read("k", read)).version == 2  # the newer answer is the one kept


async def test_tags_of_evicted_and_expired_answers_are_not_kept_forever() -> None:
    read = CountingRead()
    small = Coalescer(fresh_for=60, max_kept=2, tag_of=lambda answer: answer % 2)
    for key in ("a", "b", "c", "d"):
        await small.read(key, read)
    assert sum(len(keys) for keys in small._keys_of_tag.values()) == 2
    brief = Coalescer(fresh_for=0.001, tag_of=lambda answer: "t")
    await brief.read("k", read)
    await asyncio.sleep(0.01)
    await brief.read("k", read)
    assert brief._keys_of_tag == {"t": {"k"}}
