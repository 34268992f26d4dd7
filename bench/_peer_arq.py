"""The arq peer of ``bench.peers``: one job per sub-query, results kept by arq in Redis.

arq pins redis-py below 6, which the Celery that querybatch uses cannot work with, so arq
runs in an environment of its own (``bench.peers`` builds it with uv) and everything arq
does happens in this module's commands, run with that environment's Python:

- ``worker``: one arq worker (``max_jobs``: its share of the workload's concurrency);
- ``enqueue START STOP``: one job per index, many at once (arq has no bulk enqueue);
  prints the epoch time the first was sent;
- ``results N``: every job's result (``Job.result_info``, what ``Job.result`` reads);
  prints, as JSON, how long that took, the rows read, how many results were complete, and
  the last finish time.

``poll_delay`` is lowered from arq's 0.5 s to the task's latency, so that a slot that frees
up waits for new jobs no longer than one task takes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any, ClassVar

from arq import run_worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job

from bench._peer_work import LATENCY_S, QUEUE, REDIS_URL, ROWS_PER_TASK, RUNS_KEY, rows

BLOCK = 500  # jobs enqueued or read at once


async def subquery(ctx: dict[str, Any], index: int) -> list[list[str | int]]:
    """Wait for the source, count the run, return the rows (arq keeps them)."""
    await asyncio.sleep(LATENCY_S)
    await ctx["redis"].hincrby(RUNS_KEY, str(index), 1)
    return rows(index)


class WorkerSettings:
    """What arq reads to run a worker."""

    functions: ClassVar[list[Any]] = [subquery]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    queue_name = QUEUE
    max_jobs = int(os.environ.get("QB_PEER_CONCURRENCY", "100"))
    keep_result = 3600
    poll_delay = max(LATENCY_S, 0.01)
    handle_signals = True


def job_id(index: int) -> str:
    return f"{QUEUE}-{index}"


async def _pool() -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=QUEUE)


async def enqueue(start: int, stop: int) -> float:
    """Enqueue jobs ``start`` to ``stop``; when the first was sent."""
    pool = await _pool()
    began = time.time()
    try:
        for first in range(start, stop, BLOCK):
            indexes = range(first, min(first + BLOCK, stop))
            await asyncio.gather(
                *(pool.enqueue_job("subquery", i, _job_id=job_id(i)) for i in indexes)
            )
    finally:
        await pool.aclose()
    return began


async def results(n: int) -> dict[str, float]:
    """Read every job's result back."""
    pool = await _pool()
    began = time.perf_counter()
    read = complete = 0
    finished = 0.0
    try:
        for first in range(0, n, BLOCK):
            indexes = range(first, min(first + BLOCK, n))
            jobs = [Job(job_id(i), pool, _queue_name=QUEUE) for i in indexes]
            # One read a job: its result and when it finished (Job.result reads the same).
            infos = [i for i in await asyncio.gather(*(job.result_info() for job in jobs)) if i]
            values = [i.result for i in infos if i.success]
            read += sum(len(v) for v in values if isinstance(v, list))
            complete += sum(1 for v in values if isinstance(v, list) and len(v) == ROWS_PER_TASK)
            finished = max([finished, *(i.finish_time.timestamp() for i in infos)])
    finally:
        await pool.aclose()
    return {
        "readback_s": time.perf_counter() - began,
        "rows_read": read,
        "results": complete,
        "finished": finished,
    }


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "worker":
        # arq's own command line logs every job at INFO; the other peers log warnings only.
        logging.basicConfig(level=logging.WARNING)
        run_worker(WorkerSettings)  # type: ignore[arg-type]
    elif command == "enqueue":
        print(json.dumps({"began": asyncio.run(enqueue(int(argv[1]), int(argv[2])))}))
    elif command == "results":
        print(json.dumps(asyncio.run(results(int(argv[1])))))
    else:
        raise SystemExit(f"unknown command {command!r}: worker, enqueue or results")


if __name__ == "__main__":
    main(sys.argv[1:])
