"""The data endpoint through a real server process: formats, parameters, paging, polling."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from support import assert_error, wait_until

# Dates resolved, a source's accounts and fields, and the spec are the API node's own, the
# same in both deployments; every test that runs, stores or reads a query runs in both.
EMBEDDED = pytest.mark.deployments("embedded")

ADS = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": "ads-0001,ads-0002",
    "fields": "date,campaign_name,impressions,clicks,cost",
    "start_date": "2026-01-01",
    "end_date": "2026-01-03",
}


def fresh(**params: Any) -> dict[str, Any]:
    """The ADS query with its own schedule id, so tests never share a query."""
    return {**ADS, "schedule_id": "t_" + uuid.uuid4().hex[:20], **params}


def test_json_answers_rows_with_the_header_row_first(api: httpx.Client) -> None:
    body = api.get("/query/data/json", params=fresh()).json()
    assert body["meta"]["status_code"] == "SUCCESS"
    assert body["data"][0] == ["Date", "Campaign name", "Impressions", "Clicks", "Cost"]
    # 3 days x 5 campaigns, both accounts summed per (date, campaign).
    assert len(body["data"]) == 1 + 15
    assert all(isinstance(v, str) for row in body["data"] for v in row)
    assert body["meta"]["result"]["total_rows"] == 15
    fields = body["meta"]["query"]["fields"]
    assert [f["data_column"] for f in fields] == [0, 1, 2, 3, 4]
    assert [f["field_type"] for f in fields] == ["dim", "dim", "met", "met", "met"]


def test_no_headers_setting_leaves_the_header_row_out(api: httpx.Client) -> None:
    body = api.get("/query/data/json", params=fresh(settings='{"no_headers": true}')).json()
    assert len(body["data"]) == 15
    assert body["data"][0][0] == "2026-01-01"


def test_keyjson_gives_one_object_per_row_keyed_by_field_id(api: httpx.Client) -> None:
    body = api.get("/query/data/keyjson", params=fresh()).json()
    assert len(body["data"]) == 15
    assert set(body["data"][0]) == {"date", "campaign_name", "impressions", "clicks", "cost"}


def test_ndjson_csv_tsv_and_parquet_hold_the_same_rows_as_json(api: httpx.Client) -> None:
    schedule_id = "t_" + uuid.uuid4().hex[:20]
    reference = api.get("/query/data/json", params={**ADS, "schedule_id": schedule_id}).json()
    expected = reference["data"][1:]

    ndjson = api.get("/query/data/ndjson", params={"schedule_id": schedule_id})
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in ndjson.content.splitlines()]
    assert [[str(v) for v in line.values()] for line in lines] == expected

    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        text = api.get(f"/query/data/{fmt}", params={"schedule_id": schedule_id}).text
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        assert rows[0] == reference["data"][0]
        assert rows[1:] == expected

    parquet = api.get("/query/data/parquet", params={"schedule_id": schedule_id})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column_names == ["date", "campaign_name", "impressions", "clicks", "cost"]
    assert [[str(v) for v in row.values()] for row in table.to_pylist()] == expected


def test_parameters_arrive_flat_repeated_as_json_or_in_a_body_with_the_same_result(
    api: httpx.Client,
) -> None:
    flat = api.get("/query/data/json", params=ADS).json()
    repeated = api.get(
        "/query/data/json",
        params=[
            ("ds_id", "DEMO_ADS"),
            ("ds_accounts", "ads-0001"),
            ("ds_accounts", "ads-0002"),
            *[("fields", f) for f in ADS["fields"].split(",")],
            ("start_date", "2026-01-01"),
            ("end_date", "2026-01-03"),
        ],
    ).json()
    as_json = api.get("/query/data/json", params={"json": orjson.dumps(ADS).decode()}).json()
    body = api.post("/query/data/json", json={**ADS, "unknown_key": 1}).json()
    form = api.post("/query/data/json", data=ADS).json()
    for other in (repeated, as_json, body, form):
        assert other["data"] == flat["data"]
        # The same parameters derive the same schedule id: these all answered one query.
        assert other["meta"]["schedule_id"] == flat["meta"]["schedule_id"]


def test_paging_with_offsets_links_to_the_next_page_and_repeats_the_fields(
    api: httpx.Client,
) -> None:
    params = fresh(fields="date,campaign_name,impressions", end_date="2026-01-10")
    first = api.get("/query/data/json", params={**params, "offset_start": 0, "offset_end": 19})
    page = first.json()
    assert page["meta"]["result"]["total_rows"] == 50
    assert len(page["data"]) == 1 + 20
    assert "prev" not in page["meta"]["paginate"]
    next_url = page["meta"]["paginate"]["next"]
    assert next_url.startswith(str(api.base_url))
    rows = page["data"][1:]
    while next_url:
        page = api.get(next_url).json()
        assert page["data"][0] == ["Date", "Campaign name", "Impressions"]
        assert len(page["meta"]["query"]["fields"]) == 3
        rows += page["data"][1:]
        next_url = page["meta"]["paginate"].get("next")
    assert "prev" in page["meta"]["paginate"]
    whole = api.get("/query/data/json", params={"schedule_id": params["schedule_id"]}).json()
    assert rows == whole["data"][1:]


def test_max_rows_caps_the_result(api: httpx.Client) -> None:
    body = api.get("/query/data/json", params=fresh(max_rows=4)).json()
    assert body["meta"]["result"]["total_rows"] == 4


def test_order_rows_sorts_by_the_named_fields(api: httpx.Client) -> None:
    body = api.get(
        "/query/data/json", params=fresh(order_rows="impressions desc", max_rows=5)
    ).json()
    impressions = [int(row[2]) for row in body["data"][1:]]
    assert impressions == sorted(impressions, reverse=True)
    everything = api.get("/query/data/json", params=fresh()).json()
    assert impressions == sorted((int(r[2]) for r in everything["data"][1:]), reverse=True)[:5]


def test_filter_keeps_only_matching_rows(api: httpx.Client) -> None:
    body = api.get(
        "/query/data/json", params=fresh(filter="impressions > 2000 AND campaign_name =@ 00")
    ).json()
    assert body["data"][1:]
    assert all(int(row[2]) > 2000 for row in body["data"][1:])


@EMBEDDED
def test_relative_dates_resolve_and_are_reported(api: httpx.Client) -> None:
    body = api.get("/query/data/json", params=fresh(start_date="last_7_days", end_date="")).json()
    query = body["meta"]["query"]
    assert query["start_date"] < query["end_date"]
    assert len(body["data"]) == 1 + 7 * 5


def test_a_short_sync_timeout_answers_the_status_and_polling_completes(
    api: httpx.Client,
) -> None:
    params = fresh(settings='{"demo_latency_ms": 700}', sync_timeout=0)
    pending = api.get("/query/data/json", params=params).json()
    assert pending["meta"]["status_code"] in ("SCHEDULED", "QUEUED", "RUNNING")
    assert pending["data"] == []
    assert pending["meta"]["progress"] == {"queries_ready": 0, "queries_total": 1}
    assert set(pending["meta"]["workflow"]) == {"tasks_scheduled", "tasks_running"}

    def finished() -> dict[str, Any] | None:
        status = api.get("/query/status", params={"schedule_id": params["schedule_id"]}).json()
        return status if status["meta"]["status_code"] == "SUCCESS" else None

    done = wait_until(finished, timeout=20)
    assert done["meta"]["progress"] == {"queries_ready": 1, "queries_total": 1}
    assert len(done["data"]) == 1 + 15
    # Polling the data endpoint by schedule id alone, ds_id empty, answers the same rows.
    again = api.get(
        "/query/data/json", params={"schedule_id": params["schedule_id"], "ds_id": ""}
    ).json()
    assert again["data"] == done["data"]


def test_the_request_id_of_a_pending_answer_also_names_the_query(api: httpx.Client) -> None:
    params = fresh(settings='{"demo_latency_ms": 300}', sync_timeout=0)
    pending = api.get("/query/data/json", params=params).json()
    request_id = pending["meta"]["request_id"]
    polled = api.get("/query/data/json", params={"schedule_id": request_id, "sync_timeout": 30})
    assert polled.json()["meta"]["schedule_id"] == params["schedule_id"]
    assert polled.json()["meta"]["status_code"] == "SUCCESS"


def test_cache_minutes_reuses_a_young_identical_result(api: httpx.Client) -> None:
    first = api.get("/query/data/json", params=fresh()).json()
    assert first["meta"]["result"]["cache_used"] is False
    cached = api.get("/query/data/json", params=fresh(cache_minutes=60)).json()
    assert cached["meta"]["result"]["cache_used"] is True
    assert cached["meta"]["result"]["cache_time"]
    assert cached["data"] == first["data"]


def test_every_route_is_served_under_the_old_prefixes(api: httpx.Client) -> None:
    params = fresh()
    root = api.get("/query/data/json", params=params).json()
    for prefix in ("/v2", "/enterprise/v2"):
        body = api.get(f"{prefix}/query/data/json", params={"schedule_id": params["schedule_id"]})
        assert body.json()["data"] == root["data"]
        status = api.get(f"{prefix}/query/status", params={"schedule_id": params["schedule_id"]})
        assert status.json()["meta"]["status_code"] == "SUCCESS"
        assert api.get(f"{prefix}/query/accounts", params={"ds_id": "DEMO_ADS"}).status_code == 200


def test_query_results_pages_with_offset_and_limit(api: httpx.Client) -> None:
    params = fresh()
    api.get("/query/data/json", params=params)
    page = api.get(
        "/query/results", params={"schedule_id": params["schedule_id"], "offset": 5, "limit": 4}
    ).json()
    whole = api.get("/query/status", params={"schedule_id": params["schedule_id"]}).json()
    assert page["data"][1:] == whole["data"][1 + 5 : 1 + 9]
    assert "next" in page["meta"]["paginate"] and "prev" in page["meta"]["paginate"]


def test_query_results_of_a_running_query_are_unavailable(api: httpx.Client) -> None:
    params = fresh(settings='{"demo_latency_ms": 2000}', sync_timeout=0)
    api.get("/query/data/json", params=params)
    response = api.get("/query/results", params={"schedule_id": params["schedule_id"]})
    assert_error(response, 404, "QUERY_RESULTS_UNAVAILABLE")


def test_failing_account_reports_failure_with_the_account_named(api: httpx.Client) -> None:
    body = api.get(
        "/query/data/json", params=fresh(settings='{"demo_fail_accounts": "ads-0002"}')
    ).json()
    assert body["meta"]["status_code"] == "FAILURE"
    assert body["data"] == []
    assert "ads-0002" in body["meta"]["error"]["description"]


@EMBEDDED
def test_accounts_list_logins_with_their_accounts(api: httpx.Client) -> None:
    body = api.get("/query/accounts", params={"ds_id": "DEMO_WEB"}).json()
    accounts = [a for login in body["data"] for a in login["accounts"]]
    assert len(accounts) >= 20
    assert set(accounts[0]) == {"account_id", "account_name", "group_name"}
    one = body["data"][0]["ds_user"]
    only = api.get("/query/accounts", params={"ds_id": "DEMO_WEB", "ds_users": one}).json()
    assert [login["ds_user"] for login in only["data"]] == [one]


@EMBEDDED
def test_fields_list_dimensions_and_metrics_with_types(api: httpx.Client) -> None:
    body = api.get("/query/fields", params={"ds_id": "DEMO_ADS"}).json()
    by_id = {f["field_id"]: f for f in body["data"]}
    for field in ("date", "account_id", "campaign_name"):
        assert by_id[field]["field_type"] == "dim"
    for field in ("impressions", "clicks", "cost", "conversions"):
        assert by_id[field]["field_type"] == "met"
    assert by_id["cost"]["data_type"] == "currency"
    assert by_id["impressions"]["entity_type"] == "ds_metric"


@EMBEDDED
def test_openapi_describes_every_route_and_docs_are_served(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/query/data/{output_format}", "/query/status", "/query/batch", "/batches"):
        assert path in paths
    assert api.get("/docs").status_code == 200


def test_metrics_count_finished_sub_queries_per_data_source(api: httpx.Client) -> None:
    api.get(
        "/query/data/json",
        params=fresh(ds_id="DEMO_WEB", fields="date,sessions", ds_accounts="web-0001"),
    )
    text = httpx.get(str(api.base_url) + "/metrics").text
    finished = [
        line
        for line in text.splitlines()
        if line.startswith(
            'querybatch_subqueries_finished_total{ds_id="DEMO_WEB",status="SUCCESS"}'
        )
    ]
    assert finished and float(finished[0].split()[-1]) >= 1
    assert "querybatch_subqueries_waiting " in text and "querybatch_node_leader" in text
