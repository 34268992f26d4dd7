"""Waiting for a batch to stop: woken by a notice, by a look again, or by the poll."""

from __future__ import annotations

import asyncio

from querybatch.engine.waiters import Waiters

SLOW_POLL = 30.0  # the poll alone would never answer within a test


class Batch:
    """A batch's stopped flag as the store would tell it, counting the reads."""

    def __init__(self) -> None:
        self.stopped = False
        self.reads = 0

    async def is_stopped(self) -> bool:
        self.reads += 1
        return self.stopped


async def settled() -> None:
    """Let the waiting task run up to its next await."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_notice_ends_the_wait_without_reading_the_store_again() -> None:
    waiters, batch = Waiters(SLOW_POLL), Batch()
    waiting = asyncio.create_task(waiters.wait("b1", 60, batch.is_stopped))
    await settled()
    waiters.notify(["b1"])
    assert await asyncio.wait_for(waiting, 5) is True
    assert batch.reads == 1


async def test_look_again_reads_the_store_at_once_and_ends_the_wait_once_it_says_stopped() -> None:
    waiters, batch = Waiters(SLOW_POLL), Batch()
    waiting = asyncio.create_task(waiters.wait("b1", 60, batch.is_stopped))
    await settled()
    waiters.look_again(["b1"])  # a sub-query ended, the batch has not stopped yet
    await settled()
    assert batch.reads == 2
    assert not waiting.done()
    batch.stopped = True  # a worker's commit stopped it
    waiters.look_again(["b1"])
    assert await asyncio.wait_for(waiting, 5) is True
    assert batch.reads == 3


async def test_look_again_for_another_batch_leaves_the_wait_alone() -> None:
    waiters, batch = Waiters(SLOW_POLL), Batch()
    waiting = asyncio.create_task(waiters.wait("b1", 60, batch.is_stopped))
    await settled()
    waiters.look_again(["b2"])
    await settled()
    assert batch.reads == 1
    assert not waiting.done()
    waiting.cancel()


async def test_a_wait_that_is_never_woken_polls_and_times_out() -> None:
    waiters, batch = Waiters(poll_seconds=0.01), Batch()
    assert await waiters.wait("b1", 0.05, batch.is_stopped) is False
    assert batch.reads >= 2
