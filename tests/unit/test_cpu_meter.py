"""The CPU a request costs: its own steps on the loop's thread, and its reads on others."""

from __future__ import annotations

import asyncio
import time

import pytest

from querybatch.cpu_meter import CpuMeter, current_meter, metered


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def test_steps_count_and_the_time_spent_suspended_does_not() -> None:
    async def poll() -> str:
        burn(0.03)
        await asyncio.sleep(0.3)  # the loop is free for others meanwhile
        burn(0.03)
        return "answer"

    meter = CpuMeter()
    assert await meter.run(poll()) == "answer"
    assert 0.06 <= meter.seconds < 0.2


async def test_others_running_while_it_waits_are_not_charged_to_it() -> None:
    async def engine() -> None:
        burn(0.1)

    async def poll() -> None:
        await asyncio.sleep(0.05)

    meter = CpuMeter()
    await asyncio.gather(meter.run(poll()), engine())
    assert meter.seconds < 0.05


async def test_reads_handed_to_a_thread_count_for_the_request_that_asked() -> None:
    async def poll() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, metered(lambda: burn(0.05)))

    meter = CpuMeter()
    await meter.run(poll())
    assert meter.seconds >= 0.05
    assert current_meter.get() is None  # the meter is the request's only while it runs
    assert metered(burn) is burn  # with nobody counting, nothing is wrapped


async def test_errors_and_cancellation_pass_through_as_they_were() -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        await CpuMeter().run(failing())

    caught: list[str] = []

    async def cancelled() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            caught.append("cancelled")
            raise

    task = asyncio.create_task(CpuMeter().run(cancelled()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert caught == ["cancelled"]
