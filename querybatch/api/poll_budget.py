"""The share of the event loop that polls may take while the engine works beside them.

On a node that runs work (the embedded default runs every sub-query on the API's own event
loop; a scale-out node that leads claims and dispatches on it), every millisecond a poll
takes is a millisecond the engine waits. Polls are cheap one by one, but a few clients
polling flat out take as much of the loop as they are given, and the work they watch slows
with them. A token bucket of loop time keeps that share bounded: polls earn ``share``
seconds of loop time per second, spend what each answer took, and once they are in debt the
next poll waits until the debt is paid. While the engine has nothing to do, polls wait for
nothing, and a quiet poller never waits: a full bucket holds ``burst`` seconds.

Polls take turns (one at a time, see :mod:`querybatch.api.poll_lane`) and the waiting one
holds the turn, so clients are served in order of arrival and a flat-out poller only slows
itself and those polling with it, never the work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

BURST_SECONDS = 0.02  # a full bucket: about twenty polls answered back to back
# What the HTTP server spends on a request outside the app (reading and parsing it, the task
# that serves it, writing the answer out): about 0.15 ms of CPU, measured as the cost of a
# bare uvicorn app's answer (docs/performance.md). The app cannot time it, so it is charged
# as a constant beside what each poll is measured to take.
REQUEST_SECONDS = 0.00015


class PollBudget:
    """How much of the event loop polls may spend while ``at_work()`` says the engine works."""

    def __init__(
        self,
        share: float,
        at_work: Callable[[], bool],
        *,
        burst: float = BURST_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.at_work = at_work
        self.burst = burst
        self.clock = clock
        self._balance = burst
        self._at = clock()
        # What /metrics shows of this node's polls: how many waited, how long, and their CPU.
        self.polls = 0
        self.held = 0
        self.held_seconds = 0.0
        self.cpu_seconds = 0.0

    @property
    def unbounded(self) -> bool:
        """A share of 1: polls may take the whole loop (the bucket never runs dry)."""
        return self.share >= 1

    def balance(self) -> float:
        """Seconds of loop time polls may still spend now (negative: in debt)."""
        now = self.clock()
        self._balance = min(self.burst, self._balance + (now - self._at) * self.share)
        self._at = now
        return self._balance

    def debt_wait(self) -> float:
        """Seconds the next poll must wait to be answered (0: at once)."""
        if self.unbounded or not self.at_work():
            return 0.0
        balance = self.balance()
        return 0.0 if balance >= 0 else -balance / self.share

    async def wait_turn(self) -> None:
        """Return once polls may spend loop time again."""
        wait = self.debt_wait()
        if wait <= 0:
            return
        self.held += 1
        while wait > 0:
            self.held_seconds += wait
            await asyncio.sleep(wait)
            wait = self.debt_wait()

    def charge(self, seconds: float) -> None:
        """A poll's answer took ``seconds`` of CPU (free while the engine has nothing to do);
        the HTTP server's own part of the request is charged with it."""
        self.polls += 1
        self.cpu_seconds += seconds + REQUEST_SECONDS
        if self.unbounded or not self.at_work():
            return
        self.balance()
        self._balance -= seconds + REQUEST_SECONDS
