"""The chaos suite's batch: posted, watched in the database, and checked for exactly-once."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import psycopg
from cluster import Cluster

from support import ServerProcess, client

ACCOUNTS = [f"web-{n:04}" for n in range(1, 6)]
FIRST_DAY = date(2026, 1, 1)
DAYS = 120
SUB_QUERIES = len(ACCOUNTS) * DAYS
BATCH: dict[str, Any] = {
    "queries": [
        {
            "ds_id": "DEMO_WEB",
            "ds_accounts": ACCOUNTS,
            "fields": "date,account_id,sessions",
            "start_date": FIRST_DAY.isoformat(),
            "end_date": (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat(),
            "settings": {"demo_latency_ms": 300},
        }
    ],
    "split_dates_policy": "day",
    "split_accounts_policy": "all",
    "query_concurrency": 40,
}
POLL_SECONDS = 0.1


def post_batch(node: ServerProcess) -> str:
    """Post the batch through ``node``; its id."""
    with client(node) as api:
        made = api.post("/query/batch", json=BATCH)
    assert made.status_code == 201, made.text
    assert made.json()["data"]["query_amount"] == SUB_QUERIES
    batch_id: str = made.json()["data"]["batch_id"]
    return batch_id


@dataclass
class Watch:
    """Follows one batch in the database (whatever the nodes' state) on a connection of its own.

    ``timeline`` holds (seconds since the watch began, sub-queries succeeded) at each change.
    """

    cluster: Cluster
    batch_id: str
    began: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    status: str = ""
    succeeded: int = 0

    def until_succeeded(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` sub-queries have succeeded."""
        self._follow(lambda: self.succeeded >= count, timeout)

    def until_stopped(self, deadline: float) -> bool:
        """Until the batch stops, or ``deadline`` seconds after the watch began; whether it
        stopped."""
        self._follow(lambda: self.status == "STOPPED", deadline - self.elapsed())
        return self.status == "STOPPED"

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def makespan(self) -> float:
        """Seconds from the batch's creation to its end, as the store recorded them."""
        ((created, ended),) = self.cluster.sql(
            "SELECT created_at, end_time FROM batches WHERE id = %(b)s", b=self.batch_id
        )
        return float(ended - created)

    def longest_stall(self, since: float) -> float:
        """The longest time after ``since`` (seconds since the watch began) in which no
        sub-query succeeded, up to the end of the batch or of the watch."""
        end = self.timeline[-1][0] if self.status == "STOPPED" else self.elapsed()
        moments = [since] + [t for t, _ in self.timeline if t > since] + [end]
        return max(b - a for a, b in pairwise(moments))

    def _follow(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        with psycopg.connect(self.cluster.direct_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT status, n_success FROM batches WHERE id = %(b)s", {"b": self.batch_id}
                ).fetchone()
                assert row is not None
                self.status, succeeded = str(row[0]), int(row[1])
                if succeeded != self.succeeded or not self.timeline:
                    self.succeeded = succeeded
                    self.timeline.append((self.elapsed(), succeeded))
                if done() or time.monotonic() > deadline:
                    return
                time.sleep(POLL_SECONDS)


def stored_once(cluster: Cluster, batch_id: str) -> list[str]:
    """What is wrong with the batch's results: each sub-query succeeded once, with exactly
    its one row, and no run left rows behind. Empty when all is well."""
    problems = []
    statuses = Counter(
        dict(
            cluster.sql(
                "SELECT status, count(*) FROM queries WHERE batch_id = %(b)s GROUP BY status",
                b=batch_id,
            )
        )
    )
    if statuses != Counter(SUCCESS=SUB_QUERIES):
        problems.append(f"statuses {dict(statuses)}")
    ((queries, distinct),) = cluster.sql(
        "SELECT count(*), count(DISTINCT result_id) FROM queries WHERE batch_id = %(b)s",
        b=batch_id,
    )
    ours = "SELECT result_id FROM queries WHERE batch_id = %(b)s"
    ((results, result_rows),) = cluster.sql(
        f"SELECT count(*), coalesce(sum(total_rows), 0) FROM results WHERE id IN ({ours})",
        b=batch_id,
    )
    ((chunks, chunk_rows),) = cluster.sql(
        f"SELECT count(*), coalesce(sum(row_count), 0) FROM result_chunks WHERE result_id IN "
        f"({ours})",
        b=batch_id,
    )
    expected = (SUB_QUERIES,) * 6
    if (queries, distinct, results, result_rows, chunks, chunk_rows) != expected:
        problems.append(
            f"{queries} sub-queries, {distinct} distinct results, {results} results of "
            f"{result_rows} rows, {chunks} chunks of {chunk_rows} rows (each should be "
            f"{SUB_QUERIES})"
        )
    ((orphans,),) = cluster.sql(
        "SELECT count(*) FROM result_chunks WHERE result_id NOT IN (SELECT id FROM results)"
    )
    if orphans:
        problems.append(f"{orphans} chunks of runs that never recorded a result")
    return problems


def check_rows(node: ServerProcess, batch_id: str, every: int = 1) -> list[str]:
    """What the API answers wrongly for the batch (its state, and each ``every``-th
    sub-query's rows): empty when all is well."""
    problems = []
    with client(node) as api:
        batch = api.get(f"/query/batch/{batch_id}").json()["data"]
        if batch["status_code"] != "STOPPED" or batch["progress"]["success"] != SUB_QUERIES:
            problems.append(f"the API says {batch['status_code']}, {batch['progress']}")
        items = api.get(f"/query/batch/{batch_id}/status", params={"limit": 1000}).json()["data"]
        for item in items[::every]:
            if item["status_code"] != "SUCCESS":
                problems.append(f"sub-query {item['split_info']}: {item['status_code']}")
                continue
            rows = api.get(item["result_info"]["results_url"]).json()["data"][1:]
            split = item["split_info"]
            expected = [[split["start_date"], split["ds_accounts"][0], rows[0][2] if rows else 0]]
            if rows != expected:
                problems.append(f"sub-query {split}: rows {rows}")
    return problems
