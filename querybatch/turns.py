"""Turns: requests served one at a time, and waits that must not hold the turn.

The poll lane answers polls one at a time (a turn each), since every poll works on the event
loop the engine runs on. A poll that has to wait for something other than the CPU (a
sub-query of a large batch not stored yet) must not hold every other poll up meanwhile: it
gives its turn back for the wait and takes a turn again after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

# The turn the request being served holds, if it is served in turns: set by whoever serves
# it (the poll lane), read by whoever waits deep inside the engine.
current_turn: ContextVar[asyncio.Semaphore | None] = ContextVar("qb_turn", default=None)


@asynccontextmanager
async def outside_turn() -> AsyncIterator[None]:
    """Wait in the block without holding the current request's turn, if it holds one."""
    turn = current_turn.get()
    if turn is None:
        yield
        return
    turn.release()
    try:
        yield
    finally:
        # The caller gives its turn back when it leaves, however it leaves: cancelled while
        # waiting here, it must still take one, or the turns would grow by one. Shielded,
        # the take goes on and pays for that give-back.
        await asyncio.shield(turn.acquire())
