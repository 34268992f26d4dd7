"""The Celery peer of ``bench.peers``: one task per sub-query, results in Redis.

Run by ``celery -A bench._peer_celery worker -P gevent``: Celery's documentation recommends
the gevent (or eventlet) pool for I/O-bound tasks, with a concurrency far above the number
of cores; the worker patches the standard library, so ``time.sleep`` yields to other tasks.
Results go to Redis, Celery's recommended result backend next to a Redis broker.
"""

from __future__ import annotations

import time

import redis
from celery import Celery

from bench._peer_work import LATENCY_S, QUEUE, REDIS_URL, RUNS_KEY, rows

app = Celery("qb_peer", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
app.conf.update(
    task_default_queue=QUEUE,
    result_expires=3600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_runs = redis.Redis.from_url(REDIS_URL)


@app.task(name="qb_peer.subquery")
def subquery(index: int) -> list[list[str | int]]:
    """Wait for the source, count the run, return the rows (Celery stores them)."""
    time.sleep(LATENCY_S)
    _runs.hincrby(RUNS_KEY, str(index), 1)
    return rows(index)
