"""Slowing a data source down when its upstream asks for it (HTTP 429 with Retry-After)."""

from __future__ import annotations

import asyncio
import time


class SourceThrottle:
    """Per data source, the moment before which no new request should be sent to it."""

    def __init__(self) -> None:
        self._paused_until: dict[str, float] = {}

    def pause(self, ds_id: str, seconds: float) -> None:
        """Send nothing to ``ds_id`` for ``seconds`` (a longer pause already set wins)."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until.get(ds_id, 0.0):
            self._paused_until[ds_id] = until

    def paused_for(self, ds_id: str) -> float:
        """Seconds left before ``ds_id`` may be asked again (0 when it may now)."""
        return max(0.0, self._paused_until.get(ds_id, 0.0) - time.monotonic())

    async def wait(self, ds_id: str) -> None:
        """Return once ``ds_id`` may be asked again."""
        while (delay := self.paused_for(ds_id)) > 0:
            await asyncio.sleep(delay)
