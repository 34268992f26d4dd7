"""Coalescing identical reads: those in flight at the same time, and those repeated soon after.

Clients poll: many requests for the same batch or query arrive together, and each client
asks again and again. While one read of a key is under way, the others await its answer
instead of reading again; and with ``fresh_for`` an answer is shared by every read of its
key for that many seconds after it arrived, so polling a batch costs one store read per
window however many clients poll it. A change made through this node invalidates the key,
so a client that cancels and then reads sees its cancel; an answer can also carry a tag (the
batch it shows), and the engine forgets every answer of a batch the moment it stops here,
so that a batch's end is seen at the next poll. Other changes (the engine's progress,
another node) are seen within ``fresh_for`` seconds.

The same answer object is handed to every reader of a window, so that what the API builds
from it (its JSON) can be kept with it and built once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_KEPT = 10_000


class Coalescer:
    """At most one read per key in flight; late arrivals share its result, and so do reads
    within ``fresh_for`` seconds after it (at most ``max_kept`` answers kept).

    ``tag_of`` names what an answer shows (say, its batch), so that :meth:`forget` can drop
    every kept answer of it at once, whatever key it was read under.
    """

    def __init__(
        self,
        fresh_for: float = 0.0,
        max_kept: int = MAX_KEPT,
        tag_of: Callable[[Any], Hashable | None] | None = None,
    ) -> None:
        self.fresh_for = fresh_for
        self.max_kept = max_kept
        self.tag_of = tag_of
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._kept: OrderedDict[Hashable, tuple[Any, float, Hashable | None]] = OrderedDict()
        self._keys_of_tag: dict[Hashable, set[Hashable]] = {}
        self._forgets = 0  # how many forget() calls: a read under way across one is stale

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s result, or that of a read of ``key`` under way or fresh enough."""
        if self.fresh_for > 0:
            kept = self._kept.get(key)
            if kept is not None:
                if kept[1] > time.monotonic():
                    value: T = kept[0]
                    return value
                self._drop(key)
        pending = self._in_flight.get(key)
        if pending is not None:
            shared: T = await asyncio.shield(pending)
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        forgets = self._forgets
        try:
            value = await read()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so that no waiter is not a warning
            raise
        else:
            future.set_result(value)
            if (
                self.fresh_for > 0
                and self._in_flight.get(key) is future
                and self._forgets == forgets
            ):
                self._keep(key, value)
            return value
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    def invalidate(self, key: Hashable) -> None:
        """This node just changed ``key``: later reads must not join or reuse an earlier one."""
        self._in_flight.pop(key, None)
        self._drop(key)

    def forget(self, tags: Iterable[Hashable]) -> None:
        """What these tags name just changed (a batch stopped): no kept answer of them is
        reused, and no read under way is kept or joined by later reads."""
        self._forgets += 1
        self._in_flight.clear()
        for tag in tags:
            for key in self._keys_of_tag.pop(tag, ()):
                self._kept.pop(key, None)

    def _keep(self, key: Hashable, value: Any) -> None:
        self._drop(key)
        tag = self.tag_of(value) if self.tag_of is not None else None
        self._kept[key] = (value, time.monotonic() + self.fresh_for, tag)
        if tag is not None:
            self._keys_of_tag.setdefault(tag, set()).add(key)
        while len(self._kept) > self.max_kept:
            self._drop(next(iter(self._kept)))

    def _drop(self, key: Hashable) -> None:
        kept = self._kept.pop(key, None)
        if kept is None or kept[2] is None:
            return
        keys = self._keys_of_tag.get(kept[2])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of_tag[kept[2]]
