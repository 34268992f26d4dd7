"""Hostile queries against a live server: each ends fast (a 4xx or FAILURE) and `/healthz` stays
under a second while it is handled (issue 10, defects 1 and 2)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, responsive, running_server

BOMB = "(.*?){14}X"  # exponential for a backtracking engine on any text without an X
SOURCES = """
[sources.SHOP]
connector = "sql"
url = "sqlite:///{db}"
table = "orders"
date_column = "day"
account_column = "store_id"
dimensions = ["product"]
metrics = {{ units = "sum" }}
"""

# A refused query or batch is refused while it is parsed, before the store or the executor
# is involved; the queries that run (and the large result read back) run in both (BOTH).
DEPLOYMENTS = ("embedded",)
BOTH = pytest.mark.deployments("embedded", "scaleout")


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bounds")
    db = root / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (day DATE, store_id TEXT, product TEXT, units INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [("2024-03-01", "s1", f"Campaign {n:03d} " * 3, n) for n in range(200)],
        )
    sources = root / "sources.toml"
    sources.write_text(SOURCES.format(db=db))
    with running_server(root / f"data-{deployment}", QB_SOURCES=str(sources)) as started:
        yield started


def demo_query(**overrides: Any) -> dict[str, Any]:
    return {
        "schedule_id": "rb_" + uuid.uuid4().hex[:16],
        "ds_id": "DEMO_ADS",
        "ds_accounts": "ads-0001",
        "fields": "campaign_name,clicks",
        "start_date": "2026-01-01",
        "end_date": "2026-01-01",
        "sync_timeout": 60,
        **overrides,
    }


def stored(server: ServerProcess) -> tuple[int, int]:
    return server.count("batches"), server.count("queries")


def test_a_demo_query_asking_for_1e8_rows_a_day_is_refused_before_it_runs(
    server: ServerProcess, api: httpx.Client
) -> None:
    params = demo_query(settings='{"demo_rows_per_day": 100000000}')
    before = stored(server)
    with responsive(server):
        refused = api.get("/query/data/json", params=params)
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert "demo_rows_per_day must be an integer from 1 to 10000" in body["error"]["description"]
    assert stored(server) == before


def test_a_demo_query_sleeping_for_ages_is_refused_before_it_runs(
    server: ServerProcess, api: httpx.Client
) -> None:
    params = demo_query(settings='{"demo_latency_ms": 1e12}')
    with responsive(server):
        refused = api.get("/query/data/json", params=params)
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert "demo_latency_ms must be a number from 0 to 600000" in body["error"]["description"]


def test_a_batch_query_asking_for_1e8_rows_a_day_refuses_the_batch(
    server: ServerProcess, api: httpx.Client
) -> None:
    query = demo_query(settings={"demo_rows_per_day": 100_000_000})
    for key in ("schedule_id", "sync_timeout"):
        del query[key]
    before = stored(server)
    with responsive(server):
        refused = api.post("/query/batch", json={"queries": [query]})
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert "queries[0].settings" in body["error"]["message"]
    assert "demo_rows_per_day" in body["error"]["description"]
    assert stored(server) == before


@BOTH
def test_the_largest_demo_query_allowed_keeps_the_server_responsive(
    server: ServerProcess, api: httpx.Client
) -> None:
    params = demo_query(
        fields="date,campaign_name,clicks",
        end_date="2026-01-20",
        settings='{"demo_rows_per_day": 10000, "no_headers": true}',
        max_rows=10,
    )
    with responsive(server):
        body = api.get("/query/data/json", params=params).json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    assert len(body["data"]) == 10


@BOTH
def test_a_backtracking_bomb_filter_on_a_demo_source_matches_nothing_quickly(
    server: ServerProcess, api: httpx.Client
) -> None:
    settings = '{"demo_rows_per_day": 5000, "no_headers": true}'
    params = demo_query(filter=f"campaign_name =~ {BOMB}", settings=settings)
    with responsive(server):
        body = api.get("/query/data/json", params=params).json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    assert body["data"] == []


@BOTH
def test_a_backtracking_bomb_filter_on_a_sql_source_matches_nothing_quickly(
    server: ServerProcess, api: httpx.Client
) -> None:
    params = {
        "schedule_id": "rb_" + uuid.uuid4().hex[:16],
        "ds_id": "SHOP",
        "fields": "product,units",
        "start_date": "2024-03-01",
        "end_date": "2024-03-01",
        "filter": f"product =~ {BOMB}",
        "settings": '{"no_headers": true}',
        "sync_timeout": 60,
    }
    with responsive(server):
        body = api.get("/query/data/json", params=params).json()
    assert body["meta"]["status_code"] == "SUCCESS", body
    assert body["data"] == []
    params |= {"schedule_id": "rb_" + uuid.uuid4().hex[:16], "filter": "product =~ ^Campaign 00"}
    assert len(api.get("/query/data/json", params=params).json()["data"]) == 10


@pytest.mark.parametrize(
    ("ds_id", "field", "pattern"),
    [
        ("DEMO_ADS", "campaign_name", r"(a)\1"),
        ("DEMO_ADS", "campaign_name", "(?=Campaign)"),
        ("DEMO_ADS", "campaign_name", "x" * 1001),
        ("SHOP", "product", "(?<!a)b"),
    ],
)
def test_a_pattern_re2_refuses_is_a_bad_request_naming_the_filter(
    api: httpx.Client, ds_id: str, field: str, pattern: str
) -> None:
    params = demo_query(ds_id=ds_id, fields=f"{field}", filter=f"{field} =~ {pattern}")
    if ds_id == "SHOP":
        params |= {"ds_accounts": "s1", "start_date": "2024-03-01", "end_date": "2024-03-01"}
    error = assert_error(api.get("/query/data/json", params=params), 400, "BAD_REQUEST")["error"]
    assert "'filter'" in error["message"], error


def test_a_batch_with_a_pattern_re2_refuses_is_a_bad_request(api: httpx.Client) -> None:
    query = demo_query(filter=r"campaign_name =~ (a)\1")
    for key in ("schedule_id", "sync_timeout"):
        del query[key]
    response = api.post("/query/batch", json={"queries": [query]})
    assert_error(response, 400, "BAD_REQUEST")


@BOTH
def test_reading_a_large_stored_result_at_once_keeps_the_server_responsive(
    server: ServerProcess, api: httpx.Client
) -> None:
    # About 30 MB of rows, read by three clients at once: each chunk is served in a few
    # milliseconds, and other requests get the loop between chunks.
    params = demo_query(
        schedule_id="big_" + uuid.uuid4().hex[:8],
        ds_accounts=",".join(f"ads-{n:04d}" for n in range(1, 6)),
        fields="date,account_id,campaign_id,campaign_name,impressions,clicks",
        end_date="2026-01-10",
        settings='{"demo_rows_per_day": 10000}',
        max_rows=1_000_000,
        sync_timeout=300,
    )
    first = api.get("/query/data/json", params=params, timeout=300)
    assert first.status_code == 200 and first.json()["meta"]["status_code"] == "SUCCESS"
    # The readers are processes of their own: read by threads of this one, 90 MB would hold
    # the GIL that the /healthz poller needs, and the poller would measure this process.
    url, headers = f"{server.url}/query/data/csv", dict(api.headers)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=spawn) as pool:
        list(pool.map(_warm, range(3)))
        with responsive(server):
            answers = list(pool.map(_read_size, [(url, headers, params)] * 3))
    assert all(status == 200 for status, _ in answers)
    assert len({size for _, size in answers}) == 1


def _warm(_: int) -> None:
    """Start a reader process before the measured part."""


def _read_size(job: tuple[str, dict[str, str], dict[str, Any]]) -> tuple[int, int]:
    url, headers, params = job
    with httpx.stream("GET", url, params=params, headers=headers, timeout=300) as response:
        return response.status_code, sum(len(part) for part in response.iter_bytes())
