"""The task every peer of ``bench.peers`` runs, and the settings its worker processes share.

A task stands for one sub-query: it waits ``QB_PEER_LATENCY_MS`` (the data source's answer)
and returns 5 small rows, shaped like a demo sub-query's (day, campaign, two counts). The
worker modules (``bench._peer_celery``, ``bench._peer_arq``, ``bench._peer_procrastinate``)
read their settings from the environment ``bench.peers`` starts them with.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

ROWS_PER_TASK = 5
LATENCY_S = float(os.environ.get("QB_PEER_LATENCY_MS", "50")) / 1000
REDIS_URL = os.environ.get("QB_PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("QB_PEER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
QUEUE = os.environ.get("QB_PEER_QUEUE", "qb-peers")
# Each run of a task adds one to its field here (Celery and arq keep no count of runs
# themselves): a task that ran twice shows 2.
RUNS_KEY = f"{QUEUE}:runs"
FIRST_DAY = date(2000, 1, 1)


def rows(index: int) -> list[list[str | int]]:
    """The rows task ``index`` returns."""
    day = (FIRST_DAY + timedelta(days=index % 3650)).isoformat()
    return [
        [day, f"campaign-{index}-{c}", 1000 + (index * 7 + c) % 997, 10 + c]
        for c in range(ROWS_PER_TASK)
    ]
