"""kill -9 at random moments while a query batch and a bulk batch run: after every restart
on the same data, each sub-query ends exactly once and every row is intact (issue 10)."""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from support import ServerProcess, client, wait_until

pytestmark = pytest.mark.slow

SEED = 20260110  # the kill moments are random, and the same on every run
KILLS = 4
DAYS = 300  # sub-queries of the query batch, and lines of the bulk file
FIRST_DAY = date(2025, 1, 1)
FIELDS = ["date", "campaign_name", "impressions", "clicks"]
# Few sub-queries at once, each a little slow: the work spans every kill. A run lost to a
# kill uses up an attempt, and those lost are the first taken again: on a slow machine the
# same few can be running at every kill, so each may be attempted once more than there are
# kills (abandoning a query killed on every attempt is tested in test_poison_query.py).
ENV = {"QB_MAX_QUERY_CONCURRENCY": "5", "QB_RETRIES": str(KILLS)}
QUERY = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": ["ads-0001"],
    "fields": FIELDS,
    "settings": {"demo_latency_ms": 100},
}


def day(n: int) -> str:
    return (FIRST_DAY + timedelta(days=n)).isoformat()


def start_batches(api: httpx.Client) -> tuple[str, str]:
    """A query batch split into one sub-query a day, and a bulk batch of one line a day."""
    made = api.post(
        "/query/batch",
        json={
            "split_dates_policy": "day",
            "queries": [{**QUERY, "start_date": day(0), "end_date": day(DAYS - 1)}],
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["data"]["query_amount"] == DAYS
    lines = b"".join(
        orjson.dumps({**QUERY, "start_date": day(n), "end_date": day(n)}) + b"\n"
        for n in range(DAYS)
    )
    upload = api.post("/cache")
    assert upload.status_code == 201, upload.text
    put = httpx.put(upload.json()["url"], content=lines, timeout=60)
    assert put.status_code == 200, put.text
    bulk = api.post(
        "/batches",
        json={
            "handler": upload.json()["handler"],
            "operation": "get_data",
            "hash": hashlib.sha256(lines).hexdigest(),
        },
    )
    assert bulk.status_code == 201, bulk.text
    return made.json()["data"]["batch_id"], bulk.json()["batch"]


def rows_by_day(api: httpx.Client) -> dict[str, list[list[str]]]:
    """Every row of the whole range, from one direct, unsplit query (json: all text)."""
    params = {
        **QUERY,
        "settings": orjson.dumps({"no_headers": True}).decode(),
        "start_date": day(0),
        "end_date": day(DAYS - 1),
        "max_rows": 1_000_000,
        "sync_timeout": 60,
    }
    answer = api.post("/query/data/json", json=params).json()
    assert answer["meta"]["status_code"] == "SUCCESS", answer
    grouped: dict[str, list[list[str]]] = defaultdict(list)
    for row in answer["data"]:
        grouped[row[0]].append(row)
    assert len(grouped) == DAYS
    return grouped


def batch_items(api: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    """Every sub-query's status item, all pages."""
    items: list[dict[str, Any]] = []
    while True:
        page = api.get(
            f"/query/batch/{batch_id}/status", params={"offset": len(items), "limit": 1000}
        ).json()["data"]
        items += page
        if len(page) < 1000:
            return items


def test_kill_9_during_a_query_batch_and_a_bulk_batch_loses_and_duplicates_nothing(
    data_dir: Path,
) -> None:
    chance = random.Random(SEED)
    server = ServerProcess(data_dir, ENV).start()
    try:
        with client(server) as api:
            batch_id, bulk_id = start_batches(api)
        for _ in range(KILLS):
            time.sleep(chance.uniform(0.3, 2.0))
            server.kill()
            server = ServerProcess(data_dir, ENV).start()

        with client(server) as api:
            wait_until(
                lambda: (
                    api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED"
                ),
                timeout=60,
                interval=0.2,
            )
            bulk = wait_until(
                lambda: (
                    (b := api.get(f"/batches/{bulk_id}").json())["status"]
                    in ("completed", "validation_failed", "cancelled")
                    and b
                ),
                timeout=60,
                interval=0.2,
            )
            expected = rows_by_day(api)
            check_query_batch(api, server, batch_id, expected)
            assert bulk["status"] == "completed", bulk
            check_bulk_results(api, bulk_id, expected)
    finally:
        server.stop()


def check_query_batch(
    api: httpx.Client, server: ServerProcess, batch_id: str, expected: dict[str, list[list[str]]]
) -> None:
    """Each sub-query is stored once, ended once with SUCCESS, and holds its day's rows."""
    batch = api.get(f"/query/batch/{batch_id}").json()["data"]
    assert batch["query_amount"] == DAYS
    items = batch_items(api, batch_id)
    assert len(items) == DAYS
    assert len({item["schedule_id"] for item in items}) == DAYS
    assert Counter(item["status_code"] for item in items) == {"SUCCESS": DAYS}
    assert sorted(item["split_info"]["start_date"] for item in items) == sorted(expected)
    ((stored, results, distinct),) = server.sql(
        "SELECT count(*), count(result_id), count(DISTINCT result_id) FROM queries "
        "WHERE batch_id = :batch",
        batch=batch_id,
    )
    assert stored == results == distinct == DAYS
    for item in items:
        answer = api.get(
            "/query/results", params={"schedule_id": item["schedule_id"], "limit": 100_000}
        ).json()
        header, *rows = answer["data"]
        assert len(header) == len(FIELDS)
        assert rows == expected[item["split_info"]["start_date"]], item["schedule_id"]


def check_bulk_results(
    api: httpx.Client, bulk_id: str, expected: dict[str, list[list[str]]]
) -> None:
    """One result line per input line, in order, each holding its day's rows."""
    link = api.get(f"/batches/{bulk_id}", params={"download": "true"}).json()["download"]
    response = httpx.get(link["url"], timeout=60)
    assert response.status_code == 200, response.text
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["line"] for line in lines] == list(range(1, DAYS + 1))
    assert Counter(line["status"] for line in lines) == {"SUCCESS": DAYS}
    for n, line in enumerate(lines):
        # (the results file keeps the stored types; json output gives every value as text)
        rows = [[str(value) for value in row] for row in line["result"]["rows"]]
        assert rows == expected[day(n)], line["line"]
