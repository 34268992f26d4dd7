"""Coalescing identical reads that are in flight at the same time.

Clients poll: many requests for the same batch or query arrive together. While one read of
a key is under way, the others await its answer instead of reading again. Each gets a
consistent snapshot at most one read old; a change made through this node invalidates the
key, so a client that cancels and then reads sees its cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Coalescer:
    """At most one read per key in flight; late arrivals share its result."""

    def __init__(self) -> None:
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s result, or that of the read of ``key`` already under way."""
        pending = self._in_flight.get(key)
        if pending is not None:
            shared: T = await asyncio.shield(pending)
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await read()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so that no waiter is not a warning
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    def invalidate(self, key: Hashable) -> None:
        """This node just changed ``key``: later reads must not join one started before."""
        self._in_flight.pop(key, None)
