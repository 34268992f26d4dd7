"""The CPU time one request costs the server: its own steps on the event loop's thread, and
the store reads it hands to reader threads.

Wall time is no measure of it. From a poll's start to its end, whatever else the loop runs
while the poll awaits (the engine, above all) passes too; a step's wall time holds the
moments another thread (the store's writer) had the GIL; and a read on a reader thread
spends CPU the loop never sees. Each step is timed with the thread's own CPU clock instead,
and so is each read on its reader thread, for the request whose context asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# The meter of the request being served, if one is counting: set by whoever serves it, read
# by the store when it hands a read to a thread (the thread does not see the context).
current_meter: ContextVar[CpuMeter | None] = ContextVar("qb_cpu_meter", default=None)


class CpuMeter:
    """Adds up the CPU time spent for one request."""

    def __init__(self) -> None:
        self.seconds = 0.0

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``await coro``, the CPU time of its steps and of its reads counted."""
        token = current_meter.set(self)
        try:
            return await _Stepped(coro, self)
        finally:
            current_meter.reset(token)

    def measured(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn``, its CPU time on the thread that runs it counted."""

        def run() -> T:
            started = time.thread_time()
            try:
                return fn()
            finally:
                self.seconds += time.thread_time() - started

        return run


def metered(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` counted by the current request's meter, for running on another thread."""
    meter = current_meter.get()
    return fn if meter is None else meter.measured(fn)


class _Stepped(Generic[T]):
    """An awaitable that drives a coroutine step by step, timing each step."""

    __slots__ = ("coro", "meter")

    def __init__(self, coro: Coroutine[Any, Any, T], meter: CpuMeter) -> None:
        self.coro = coro
        self.meter = meter

    def __await__(self) -> Generator[Any, Any, T]:
        coro, clock = self.coro, time.thread_time
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                result: T = done.value
                return result
            finally:
                self.meter.seconds += clock() - started
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancelled while suspended: the coroutine decides
                value, error = None, exc
