"""Every invalid batch is one 400 that names what is wrong, and creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client, running_server

# Each batch is refused while it is parsed and planned, before anything is stored (that a
# batch is stored whole or not at all is tested on PostgreSQL in tests/unit/test_job_store).
DEPLOYMENTS = ("embedded",)

GOOD_QUERY = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": ["ads-0001"],
    "fields": "date,clicks",
    "start_date": "2026-01-01",
    "end_date": "2026-01-31",
}


@pytest.fixture(scope="module")
def limited(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("limited"), QB_MAX_BATCH_QUERIES="50", QB_MAX_BODY_BYTES="100000"
    ) as server:
        yield server


def batch_count(server: ServerProcess) -> int:
    return server.count("batches")


def query_count(server: ServerProcess) -> int:
    return server.count("queries")


BAD_BODIES = [
    pytest.param({}, "queries", id="no queries"),
    pytest.param({"queries": []}, "queries", id="empty queries"),
    pytest.param({"queries": "all of them"}, "queries", id="queries not a list"),
    pytest.param({"queries": [GOOD_QUERY, 7]}, "queries[1]", id="query not an object"),
    pytest.param(
        {"queries": [GOOD_QUERY, {**GOOD_QUERY, "fields": "nope"}]},
        "queries[1].fields",
        id="unknown field",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY, GOOD_QUERY, {**GOOD_QUERY, "ds_id": "NOPE"}]},
        "queries[2].ds_id",
        id="unknown data source",
    ),
    pytest.param(
        {"queries": [{**GOOD_QUERY, "start_date": "2026-02-31"}]},
        "queries[0].start_date",
        id="bad date",
    ),
    pytest.param(
        {"queries": [{**GOOD_QUERY, "max_rows": "lots"}]}, "queries[0].max_rows", id="wrong type"
    ),
    pytest.param(
        {"queries": [{**GOOD_QUERY, "ds_accounts": 5}]},
        "queries[0].ds_accounts",
        id="accounts not text",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "split_accounts_policy": "some"},
        "split_accounts_policy",
        id="bad account split",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "split_dates_policy": "hour"},
        "split_dates_policy",
        id="bad date split",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "timeout_minutes": 4}, "timeout_minutes", id="timeout too short"
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "timeout_minutes": 61}, "timeout_minutes", id="timeout too long"
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "query_concurrency": 0}, "query_concurrency", id="no concurrency"
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "query_concurrency": 51},
        "query_concurrency",
        id="too much concurrency",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "query_output_format": "xml"},
        "query_output_format",
        id="bad format",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "schedule_time": "tomorrowish"},
        "schedule_time",
        id="bad schedule time",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "schedule_time": "2026-01-01T10:00:00"},
        "schedule_time",
        id="time without zone",
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "callback_url": "ftp://x"}, "callback_url", id="bad callback url"
    ),
    pytest.param(
        {"queries": [GOOD_QUERY], "add_clean_data_types": "maybe"},
        "add_clean_data_types",
        id="not a boolean",
    ),
    pytest.param({"queries": [GOOD_QUERY] * 51}, "queries", id="too many queries"),
    pytest.param(
        {"queries": [{**GOOD_QUERY, "end_date": "2026-03-31"}], "split_dates_policy": "day"},
        "queries",
        id="too many after split",
    ),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_an_invalid_batch_is_a_bad_request_naming_the_problem_and_creates_nothing(
    limited: ServerProcess, body: dict[str, Any], named: str
) -> None:
    before = (batch_count(limited), query_count(limited))
    with client(limited) as api:
        response = api.post("/query/batch", json=body)
    error = assert_error(response, 400, "BAD_REQUEST")["error"]
    assert named in error["message"], error
    assert (batch_count(limited), query_count(limited)) == before


def test_malformed_json_creates_nothing(limited: ServerProcess) -> None:
    before = batch_count(limited)
    with client(limited) as api:
        response = api.post(
            "/query/batch", content=b'{"queries": [', headers={"content-type": "application/json"}
        )
    assert_error(response, 400, "BAD_REQUEST")
    assert batch_count(limited) == before


def test_an_oversized_batch_body_is_refused(limited: ServerProcess) -> None:
    before = batch_count(limited)
    with client(limited) as api:
        response = api.post(
            "/query/batch", json={"queries": [GOOD_QUERY], "description": "x" * 200_000}
        )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert batch_count(limited) == before


@pytest.mark.deployments("embedded", "scaleout")  # each id is looked up in the store
@pytest.mark.parametrize("batch_id", ["qrb_000000000000", "not-a-batch", "x" * 500])
def test_an_unknown_batch_id_is_not_found(api: httpx.Client, batch_id: str) -> None:
    assert_error(api.get(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
    assert_error(api.get(f"/query/batch/{batch_id}/status"), 404, "NOT_FOUND")
    assert_error(api.delete(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
    assert_error(api.get(f"/query/batch/{batch_id}/download"), 404, "NOT_FOUND")


def test_bad_paging_and_listing_parameters_are_bad_requests(api: httpx.Client) -> None:
    assert_error(
        api.get("/query/batch/qrb_000000000000/status", params={"limit": 0}), 400, "BAD_REQUEST"
    )
    assert_error(
        api.get("/query/batch/qrb_000000000000/status", params={"limit": 1001}), 400, "BAD_REQUEST"
    )
    assert_error(api.get("/query/batch", params={"status": "DONE"}), 400, "BAD_REQUEST")
    assert_error(api.get("/query/batch", params={"cursor": "garbage"}), 400, "BAD_REQUEST")
    assert_error(api.get("/query/batch", params={"created_after": "soon"}), 400, "BAD_REQUEST")
    assert_error(
        api.get("/query/batch/qrb_000000000000/download", params={"format": "xlsx"}),
        400,
        "BAD_REQUEST",
    )
