"""Telling a batch's ``callback_url`` that the batch stopped, with an HMAC-SHA256 signature.

The receiver checks ``X-Querybatch-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
``HMAC-SHA256(secret, "<t>." + body)``; see docs/batches.md. Each batch is claimed before
its callback is sent, so with several nodes one of them sends it; delivery is retried a few
times with backoff and then given up (logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import httpx
import orjson

from querybatch.store.records import BatchRecord
from querybatch.store.store import Store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Querybatch-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, tolerance: float = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` s old."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def event_of(batch: BatchRecord) -> dict[str, Any]:
    """The callback body: which batch stopped, how, and its counters."""
    counts = batch.counts
    return {
        "@type": "query_batch_event",
        "event": "query_batch.stopped",
        "batch_id": batch.id,
        "status_code": batch.status.value,
        "cancelled": batch.cancel_time is not None,
        "query_amount": batch.query_amount,
        "progress": {
            "queued": counts.queued,
            "running": counts.running,
            "success": counts.success,
            "failure": counts.failure,
            "stopped": counts.stopped,
        },
        "start_time": batch.start_time,
        "end_time": batch.end_time,
        "description": batch.settings.get("description", ""),
    }


class CallbackSender:
    """Sends the callbacks of stopped batches."""

    def __init__(
        self, store: Store, secret: bytes, attempts: int = 3, backoff: float = 1.0
    ) -> None:
        self.store = store
        self.secret = secret
        self.attempts = attempts
        self.backoff = backoff
        self._tasks: set[asyncio.Task[None]] = set()

    async def send_pending(self) -> None:
        """Claim every stopped batch whose callback is due and send each in the background."""
        due = await self.store.db.read(self.store.upkeep.stopped_without_callback)
        for batch in due:
            if await self.store.db.write(self.store.upkeep.claim_callback, batch.id, time.time()):
                task = asyncio.create_task(self._deliver(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for deliveries under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, batch: BatchRecord) -> None:
        assert batch.callback_url is not None
        body = orjson.dumps(event_of(batch))
        async with httpx.AsyncClient(timeout=10) as client:
            for attempt in range(1, self.attempts + 1):
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
                }
                try:
                    response = await client.post(batch.callback_url, content=body, headers=headers)
                    if response.status_code < 300:
                        return
                    reason = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    reason = str(exc) or type(exc).__name__
                if attempt < self.attempts:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning("callback of batch %s to %s failed: %s", batch.id, batch.callback_url, reason)
