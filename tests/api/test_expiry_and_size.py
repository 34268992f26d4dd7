"""Results expire after QB_RESULT_TTL and the sweeper deletes them; big results page cheaply."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pytest

from support import ServerProcess, assert_error, client, running_server, wait_until


@pytest.fixture(scope="module")
def short_lived(
    deployment: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("ttl"), QB_RESULT_TTL="2", QB_SWEEP_SECONDS="0.3"
    ) as server:
        yield server


def test_results_expire_and_are_swept(short_lived: ServerProcess) -> None:
    params = {
        "schedule_id": "expiring",
        "ds_id": "DEMO_ADS",
        "fields": "date,clicks",
        "start_date": "2026-01-01",
        "end_date": "2026-01-02",
    }
    with client(short_lived) as api:
        assert api.get("/query/data/json", params=params).json()["meta"]["status_code"] == "SUCCESS"
        assert short_lived.count("result_chunks") >= 1
        time.sleep(2.5)
        assert_error(
            api.get("/query/status", params={"schedule_id": "expiring"}), 404, "STATUS_NOT_FOUND"
        )
        wait_until(lambda: short_lived.count("queries") == 0, timeout=10)
        wait_until(lambda: short_lived.count("result_chunks") == 0, timeout=10)
        assert short_lived.count("results") == 0
        # The same request after expiry runs the query anew.
        again = api.get("/query/data/json", params=params).json()
        assert again["meta"]["status_code"] == "SUCCESS"


def test_a_large_result_reads_the_same_page_by_page_and_as_csv(api: httpx.Client) -> None:
    params = {
        "schedule_id": "large_result",
        "ds_id": "DEMO_ADS",
        "ds_accounts": "ads-0001",
        "fields": "date,campaign_id,impressions",
        "start_date": "2025-01-01",
        "end_date": "2025-04-10",
        "settings": '{"demo_rows_per_day": 1000}',
        "max_rows": 1_000_000,
        "sync_timeout": 120,
        "offset_start": 0,
        "offset_end": 24_999,
    }
    first = api.get("/query/data/json", params=params).json()
    total = first["meta"]["result"]["total_rows"]
    assert total == 100 * 1000
    paged = first["data"][1:]
    next_url = first["meta"]["paginate"].get("next")
    while next_url:
        page = api.get(next_url).json()
        paged.extend(page["data"][1:])
        next_url = page["meta"]["paginate"].get("next")
    assert len(paged) == total
    text = api.get("/query/data/csv", params={"schedule_id": "large_result"}).text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Date", "Campaign ID", "Impressions"]
    assert rows[1:] == paged
