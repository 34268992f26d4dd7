"""Batches of N distinct demo sub-queries: the request body, the same sub-queries for the bare
loop, and running one batch through the API while measuring the server.

Identical sub-queries running at once are de-duplicated by the engine, so every sub-query
here differs: the batch holds one query per demo account (``ads-0001``... ``ads-0025``), each
split per day (``split_dates_policy: day``) over as many days as needed to make N in total.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from bench._common import Profiling
from bench._server import BenchServer
from querybatch.domain.query import QuerySpec

DS_ID = "DEMO_ADS"
ACCOUNTS = 25  # accounts of a stock demo source
FIELDS = ("date", "campaign_id", "impressions", "clicks")
FIRST_DAY = date(2000, 1, 1)
STORE_TABLES = ("batches", "queries", "results", "result_chunks")
MAX_DAYS = 3650  # days one query may span (the API allows 3,660): longer runs take several


def _days_per_account(n: int) -> list[int]:
    """How many days each account's query covers so that they add up to ``n`` sub-queries."""
    accounts = min(ACCOUNTS, n)
    base, extra = divmod(n, accounts)
    return [base + (1 if i < extra else 0) for i in range(accounts)]


def account_id(index: int) -> str:
    """The demo account with this index (from 0)."""
    return f"ads-{index + 1:04d}"


def batch_body(
    n: int, concurrency: int, first_day: date = FIRST_DAY, **settings: Any
) -> dict[str, Any]:
    """The ``POST /query/batch`` body of ``n`` distinct one-day, one-account sub-queries,
    from ``first_day`` on."""
    queries = [
        {
            "ds_id": DS_ID,
            "ds_accounts": [account_id(i)],
            "fields": list(FIELDS),
            "start_date": (first_day + timedelta(days=first)).isoformat(),
            "end_date": (first_day + timedelta(days=min(first + MAX_DAYS, days) - 1)).isoformat(),
            **({"settings": settings} if settings else {}),
        }
        for i, days in enumerate(_days_per_account(n))
        for first in range(0, days, MAX_DAYS)
    ]
    return {
        "description": f"bench: {n} sub-queries",
        "split_dates_policy": "day",
        "query_concurrency": concurrency,
        "timeout_minutes": 60,
        "queries": queries,
    }


def subquery_specs(n: int, **settings: Any) -> list[QuerySpec]:
    """The specs of the sub-queries :func:`batch_body` splits into, in batch order."""
    specs = []
    for i, days in enumerate(_days_per_account(n)):
        for d in range(days):
            day = FIRST_DAY + timedelta(days=d)
            specs.append(
                QuerySpec(
                    ds_id=DS_ID,
                    accounts=(account_id(i),),
                    start_date=day,
                    end_date=day,
                    fields=tuple(FIELDS),
                    max_rows=1000,
                    settings=dict(settings),
                )
            )
    return specs


def epoch(iso: str | None) -> float:
    """Epoch seconds of an API timestamp (``...Z``)."""
    if iso is None:
        raise ValueError("the batch has no such time yet")
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class BatchRun:
    """One batch as measured: API times, wall times, server CPU and store growth."""

    batch_id: str
    n: int
    succeeded: int
    makespan_s: float  # end_time - start_time, as the API reports them
    wall_s: float  # POST sent -> STOPPED observed
    post_s: float  # how long the POST took to answer
    submit_cpu_s: float  # server CPU while the POST was answered (planning, inserting)
    run_cpu_s: float  # server CPU from the POST's answer to STOPPED observed
    store_bytes: int  # growth of the store's live pages over the batch
    store_file_bytes: int  # growth of the SQLite file plus its WAL on disk
    store_rows: dict[str, int]  # growth of each table's row count
    disk_write_bytes: int  # bytes the server wrote to storage (WAL, checkpoints, logs)
    main_thread_cpu_s: float  # of run_cpu_s: the event loop's thread
    busiest_thread_cpu_s: float  # of run_cpu_s: the busiest other thread (the store writer)

    @property
    def cpu_s(self) -> float:
        """Server CPU over the whole batch, submission included."""
        return self.submit_cpu_s + self.run_cpu_s


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    """Create the batch; its id."""
    response = client.post("/query/batch", json=body)
    response.raise_for_status()
    return str(response.json()["data"]["batch_id"])


def wait_stopped(client: httpx.Client, batch_id: str, poll: float = 0.05) -> dict[str, Any]:
    """Poll ``GET /query/batch/{id}`` until the batch is STOPPED; the QueryBatch object."""
    while True:
        response = client.get(f"/query/batch/{batch_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        if data["status_code"] == "STOPPED":
            return data
        time.sleep(poll)


def run_batch(
    server: BenchServer, body: dict[str, Any], n: int, profile: Profiling | None = None
) -> BatchRun:
    """Run one batch through the API of ``server`` and measure it (py-spy it to ``profile``)."""
    bytes_before, file_before = server.store_bytes(), server.store_file_bytes()
    rows_before = server.table_rows(*STORE_TABLES)
    with server.client() as client, server.profiled(profile):
        written = server.disk_write_bytes()
        cpu0 = server.cpu_seconds()
        sent = time.perf_counter()
        batch_id = submit(client, body)
        answered = time.perf_counter()
        cpu1 = server.cpu_seconds()
        threads1 = server.thread_cpu()
        data = wait_stopped(client, batch_id)
        stopped = time.perf_counter()
        cpu2 = server.cpu_seconds()
        threads2 = server.thread_cpu()
    rows_after = server.table_rows(*STORE_TABLES)
    return BatchRun(
        batch_id=batch_id,
        n=n,
        succeeded=int(data["progress"]["success"]),
        makespan_s=epoch(data["end_time"]) - epoch(data["start_time"]),
        wall_s=stopped - sent,
        post_s=answered - sent,
        submit_cpu_s=cpu1 - cpu0,
        run_cpu_s=cpu2 - cpu1,
        store_bytes=server.store_bytes() - bytes_before,
        store_file_bytes=server.store_file_bytes() - file_before,
        disk_write_bytes=server.disk_write_bytes() - written,
        store_rows={t: rows_after[t] - rows_before[t] for t in STORE_TABLES},
        main_thread_cpu_s=threads2[server.pid] - threads1.get(server.pid, 0.0),
        busiest_thread_cpu_s=max(
            (cpu - threads1.get(tid, 0.0) for tid, cpu in threads2.items() if tid != server.pid),
            default=0.0,
        ),
    )


def server_env(concurrency: int, latency_ms: float) -> dict[str, str]:
    """Server settings that let one batch run ``concurrency`` sub-queries at once."""
    room = str(max(concurrency, 50))
    return {
        "QB_MAX_QUERY_CONCURRENCY": room,
        "QB_ACCOUNT_CONCURRENCY": room,
        "QB_WORKERS": str(max(concurrency, 256)),
        "QB_DEMO_LATENCY_MS": str(latency_ms),
        "QB_MAX_BATCH_QUERIES": "1000000",
    }
