"""Telling a batch's ``callback_url`` that the batch stopped, with an HMAC-SHA256 signature.

The receiver checks ``X-Querybatch-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
``HMAC-SHA256(secret, "<t>." + body)``; see docs/batches.md. Each batch is claimed before
its callback is sent, so with several nodes one of them sends it; delivery is retried a few
times with backoff and then given up (logged).

Every attempt resolves the host again and connects only to an address the callback policy
allows (``callback_targets.py``); redirects are not followed, no proxy or ``.netrc`` from the
environment is used, and logs name only the URL's origin.
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

from querybatch.domain.callback_policy import CallbackRefused
from querybatch.engine.callback_targets import CallbackTargets, ResolutionFailed, origin_of
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
        "description": batch.settings.description,
    }


class CallbackSender:
    """Sends the callbacks of stopped batches."""

    def __init__(
        self,
        store: Store,
        secret: bytes,
        targets: CallbackTargets,
        attempts: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.secret = secret
        self.targets = targets
        self.attempts = attempts
        self.backoff = backoff
        self._tasks: set[asyncio.Task[None]] = set()

    async def send_pending(self) -> None:
        """Claim every stopped batch whose callback is due and send each in the background."""
        due = await self.store.upkeep.stopped_without_callback()
        for batch in due:
            if await self.store.upkeep.claim_callback(batch.id, time.time()):
                task = asyncio.create_task(self._deliver(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for deliveries under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, batch: BatchRecord) -> None:
        assert batch.callback_url is not None
        try:
            reason = await self.deliver(batch.callback_url, orjson.dumps(event_of(batch)))
        except Exception:
            # A task's exception is read by nobody: say it here, and only the URL's origin.
            log.exception(
                "callback of batch %s to %s failed", batch.id, origin_of(batch.callback_url)
            )
            return
        if reason is not None:
            log.warning(
                "callback of batch %s to %s failed: %s",
                batch.id,
                origin_of(batch.callback_url),
                reason,
            )

    async def deliver(self, url: str, body: bytes) -> str | None:
        """POST ``body`` to ``url`` with retries; None when delivered, else why it was not."""
        reason = "not attempted"
        async with httpx.AsyncClient(timeout=10, follow_redirects=False, trust_env=False) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    target = await self.targets.pin(url)
                    pinned, headers, extensions = target.request_for(attempt - 1)
                    headers |= {
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(self.secret, int(time.time()), body),
                    }
                    # Streamed and never read: the receiver's answer body may be of any size.
                    async with client.stream(
                        "POST", pinned, content=body, headers=headers, extensions=extensions
                    ) as response:
                        if response.status_code < 300:
                            return None
                        reason = f"HTTP {response.status_code}"
                except CallbackRefused as exc:
                    return str(exc)  # a target the policy refuses is not tried again
                except ResolutionFailed as exc:
                    reason = str(exc)
                except httpx.HTTPError as exc:
                    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                if attempt < self.attempts:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        return reason
