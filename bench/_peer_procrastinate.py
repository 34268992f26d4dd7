"""The procrastinate peer of ``bench.peers``: one job per sub-query on PostgreSQL.

Run by ``procrastinate --app=bench._peer_procrastinate.app worker``. procrastinate keeps no
results, so each task writes its rows to a table of its own, as its documentation suggests
for anything a task produces; the same statement counts the task's runs.
"""

from __future__ import annotations

import asyncio

import psycopg_pool
from procrastinate import App, PsycopgConnector
from psycopg.types.json import Jsonb

from bench._peer_work import LATENCY_S, POSTGRES_URL, QUEUE, rows

RESULTS_TABLE = "peer_results"
CREATE_RESULTS = (
    f"CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} (id integer PRIMARY KEY, rows jsonb NOT NULL, "
    "runs integer NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
)
_STORE = (
    f"INSERT INTO {RESULTS_TABLE} (id, rows, runs) VALUES (%s, %s, 1) ON CONFLICT (id) "
    f"DO UPDATE SET rows = excluded.rows, runs = {RESULTS_TABLE}.runs + 1, "
    "written_at = clock_timestamp()"
)

app = App(connector=PsycopgConnector(conninfo=POSTGRES_URL))
_pool: list[psycopg_pool.AsyncConnectionPool] = []


async def _results_pool() -> psycopg_pool.AsyncConnectionPool:
    if not _pool:
        pool = psycopg_pool.AsyncConnectionPool(POSTGRES_URL, min_size=2, max_size=10, open=False)
        await pool.open()
        _pool.append(pool)
    return _pool[0]


@app.task(name="subquery", queue=QUEUE)
async def subquery(index: int) -> None:
    """Wait for the source, then store the rows (and count the run)."""
    await asyncio.sleep(LATENCY_S)
    pool = await _results_pool()
    async with pool.connection() as conn:
        await conn.execute(_STORE, (index, Jsonb(rows(index))))
