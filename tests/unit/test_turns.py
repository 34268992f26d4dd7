"""Turns: a wait outside the turn gives it back and takes it again, whatever ends the wait."""

from __future__ import annotations

import asyncio

from querybatch.turns import current_turn, outside_turn


async def test_a_wait_outside_the_turn_lets_the_next_request_take_it() -> None:
    turns = asyncio.Semaphore(1)
    order: list[str] = []

    async def waiting() -> None:
        async with turns:
            current_turn.set(turns)
            async with outside_turn():
                order.append("waits")
                await asyncio.sleep(0.05)
            order.append("back")

    async def next_one() -> None:
        await asyncio.sleep(0.01)
        async with turns:
            order.append("next")

    await asyncio.gather(waiting(), next_one())
    assert order == ["waits", "next", "back"]
    async with turns:
        assert turns.locked()


async def test_a_request_cancelled_while_taking_its_turn_back_leaves_one_turn() -> None:
    turns = asyncio.Semaphore(1)
    waited = asyncio.Event()
    holder_may_go = asyncio.Event()

    async def waiting() -> None:
        async with turns:
            current_turn.set(turns)
            async with outside_turn():
                waited.set()
                await asyncio.sleep(0.01)

    async def holder() -> None:
        await waited.wait()
        async with turns:  # holds the turn while the waiter wants it back
            await holder_may_go.wait()

    waiter, holding = asyncio.create_task(waiting()), asyncio.create_task(holder())
    await asyncio.sleep(0.05)  # the waiter is taking its turn back, behind the holder
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    holder_may_go.set()
    await holding
    await asyncio.sleep(0)
    # Still one turn: had the cancelled waiter given back a turn it never took again,
    # two requests would be served at once from now on.
    async with turns:
        assert turns.locked()
