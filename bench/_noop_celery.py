"""The baseline of ``bench.scaleout``: a Celery task that does nothing but count itself.

Run by ``celery -A bench._noop_celery worker``; the broker and the counter's Redis come
from ``QB_BENCH_NOOP_BROKER`` and the queue from ``QB_BENCH_NOOP_QUEUE``.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("QB_BENCH_NOOP_BROKER", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("QB_BENCH_NOOP_QUEUE", "qb-bench-noop")
COUNTER = f"{QUEUE}:done"

app = Celery("qb_bench_noop", broker=BROKER, set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
_counter = redis.Redis.from_url(BROKER)


@app.task(name="qb_bench.noop")
def noop(index: int) -> int:
    """Do nothing but say it was done (the per-task cost of Celery alone)."""
    _counter.incr(COUNTER)
    return index
