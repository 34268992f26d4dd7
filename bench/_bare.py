"""The bare loop: the demo connector alone under an ``asyncio.Semaphore``, nothing stored.

It is what the engine would cost if scheduling, recording and storing were free: the same
connector, built as ``demo_sources()`` builds it, fetching the same requests the engine's
runner builds from the sub-queries' specs (``fetch_request``), at most ``concurrency`` at once.
It runs in the benchmark process, never beside a loaded server, on the same event loop
implementation as the server (uvloop when installed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench._common import run_async
from querybatch.connectors.demo import DemoConnector, demo_sources
from querybatch.domain.query import QuerySpec
from querybatch.engine.executors.fetch import fetch_request


@dataclass(frozen=True, slots=True)
class BareRun:
    """How long the bare loop took and what it produced."""

    seconds: float
    subqueries: int
    rows: int
    peak_concurrency: int

    @property
    def per_second(self) -> float:
        """Sub-queries per second."""
        return self.subqueries / self.seconds


async def _drain(connector: DemoConnector, spec: QuerySpec) -> int:
    rows = 0
    async for chunk in connector.fetch(fetch_request(spec)):
        rows += len(chunk)
    return rows


async def bare_loop_async(
    specs: Sequence[QuerySpec], concurrency: int, latency_ms: float
) -> BareRun:
    """Fetch every spec with at most ``concurrency`` fetches at once; how long it took."""
    connector = demo_sources(latency_ms=latency_ms)[specs[0].ds_id]
    DemoConnector.reset_stats()
    semaphore = asyncio.Semaphore(concurrency)
    rows = 0
    tasks: set[asyncio.Task[int]] = set()

    def finished(task: asyncio.Task[int]) -> None:
        nonlocal rows
        rows += task.result()
        tasks.discard(task)
        semaphore.release()

    began = time.perf_counter()
    for spec in specs:
        await semaphore.acquire()  # tasks are created as slots free, not all up front
        task = asyncio.create_task(_drain(connector, spec))
        tasks.add(task)
        task.add_done_callback(finished)
    while tasks:
        await asyncio.gather(*tasks)
    seconds = time.perf_counter() - began
    peak = DemoConnector.peak.get(connector.ds_id, 0)
    return BareRun(seconds, len(specs), rows, peak)


def bare_loop(specs: Sequence[QuerySpec], concurrency: int, latency_ms: float) -> BareRun:
    """:func:`bare_loop_async` on a fresh event loop."""
    return run_async(bare_loop_async(specs, concurrency, latency_ms))
