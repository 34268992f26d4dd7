"""Query batches through a real server process: lifecycle, splits, limits, cancel, downloads."""

from __future__ import annotations

import csv
import io
import time
from datetime import date, timedelta
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from support import ServerProcess, assert_error, run_cli, wait_until


def query(**overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0001", "ads-0002", "ads-0003"],
        "fields": "date,account_id,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-14",
        **overrides,
    }


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/query/batch", json={"queries": [query()], **body})
    assert response.status_code == 201, response.text
    batch: dict[str, Any] = response.json()["data"]
    return batch


def finished(api: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    def stopped() -> dict[str, Any] | None:
        batch: dict[str, Any] = api.get(f"/query/batch/{batch_id}").json()["data"]
        counts = batch["progress"]
        assert sum(counts.values()) == batch["query_amount"], counts
        return batch if batch["status_code"] == "STOPPED" else None

    result: dict[str, Any] = wait_until(stopped, timeout=timeout)
    return result


def statuses(api: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = api.get(
            f"/query/batch/{batch_id}/status", params={"offset": len(items), "limit": 1000}
        ).json()
        items.extend(page["data"])
        if len(items) >= page["meta"]["paginate"]["total"]:
            return items


def test_a_batch_is_created_at_once_and_runs_to_the_end(api: httpx.Client) -> None:
    response = api.post(
        "/query/batch",
        json={
            "queries": [
                query(),
                query(ds_id="DEMO_WEB", ds_accounts="web-0001", fields="date,sessions"),
            ],
            "description": "two",
        },
    )
    assert response.status_code == 201
    batch = response.json()["data"]
    assert batch["@type"] == "query_batch"
    assert batch["batch_id"].startswith("qrb_") and len(batch["batch_id"]) == 16
    assert batch["status_code"] in ("QUEUED", "RUNNING")
    assert batch["query_amount"] == 2
    assert batch["description"] == "two"
    assert batch["links"]["status"]["href"].endswith(f"/query/batch/{batch['batch_id']}/status")
    assert batch["end_time"] is None and batch["cancel_time"] is None

    done = finished(api, batch["batch_id"])
    assert done["progress"] == {"queued": 0, "running": 0, "success": 2, "failure": 0, "stopped": 0}
    assert done["start_time"] and done["end_time"] and done["cancel_time"] is None

    items = statuses(api, batch["batch_id"])
    assert [i["schedule_id"] for i in items] == [f"{batch['batch_id']}_query_{n}" for n in (1, 2)]
    first = items[0]
    assert first["@type"] == "batch_query"
    assert first["split_info"] == {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0001", "ads-0002", "ads-0003"],
        "start_date": "2026-01-01",
        "end_date": "2026-01-14",
    }
    assert first["error_info"] is None
    assert first["result_info"]["total_rows"] == 14 * 3
    rows = api.get(first["result_info"]["results_url"] + "&limit=1000").json()
    assert len(rows["data"]) == 1 + 14 * 3
    # /query/status answers for every batch query too.
    status = api.get("/query/status", params={"schedule_id": first["schedule_id"]}).json()
    assert status["meta"]["status_code"] == "SUCCESS"


@pytest.mark.parametrize(
    ("accounts_policy", "dates_policy", "expected"),
    [
        (
            "all",
            "none",
            [
                (("ads-0001",), "2026-01-01", "2026-01-14"),
                (("ads-0002",), "2026-01-01", "2026-01-14"),
                (("ads-0003",), "2026-01-01", "2026-01-14"),
            ],
        ),
        (
            "none",
            "day",
            [
                (("ads-0001", "ads-0002", "ads-0003"), f"2026-01-{d:02}", f"2026-01-{d:02}")
                for d in range(1, 15)
            ],
        ),
        (
            "none",
            "week",
            [
                (("ads-0001", "ads-0002", "ads-0003"), s, e)
                for s, e in (
                    ("2026-01-01", "2026-01-04"),
                    ("2026-01-05", "2026-01-11"),
                    ("2026-01-12", "2026-01-14"),
                )
            ],
        ),
        (
            "all",
            "month",
            [((a,), "2026-01-01", "2026-01-14") for a in ("ads-0001", "ads-0002", "ads-0003")],
        ),
    ],
)
def test_split_policies_make_one_sub_query_per_piece_in_order(
    api: httpx.Client,
    accounts_policy: str,
    dates_policy: str,
    expected: list[tuple[tuple[str, ...], str, str]],
) -> None:
    batch = create(api, split_accounts_policy=accounts_policy, split_dates_policy=dates_policy)
    assert batch["query_amount"] == len(expected)
    finished(api, batch["batch_id"])
    items = statuses(api, batch["batch_id"])
    pieces = [
        (
            tuple(i["split_info"]["ds_accounts"]),
            i["split_info"]["start_date"],
            i["split_info"]["end_date"],
        )
        for i in items
    ]
    assert pieces == expected
    # Each piece's rows are exactly its accounts and dates.
    for item, (accounts, start, end) in zip(items, expected, strict=True):
        rows = api.get(item["result_info"]["results_url"] + "&limit=1000").json()["data"][1:]
        assert {r[1] for r in rows} == set(accounts)
        assert min(r[0] for r in rows) == start and max(r[0] for r in rows) == end


def test_status_pages_of_any_size_list_the_sub_queries_in_order(api: httpx.Client) -> None:
    # 261 sub-queries: more than one read's worth (100), so that large pages are pieced
    # together from several reads and must still meet end to end.
    batch = create(
        api,
        queries=[query(ds_accounts=["ads-0001"], start_date="2026-01-01", end_date="2026-09-18")],
        split_dates_policy="day",
        schedule_time=(date.today() + timedelta(days=30)).isoformat() + "T00:00:00Z",
    )
    batch_id = batch["batch_id"]
    days = [(date(2026, 1, 1) + timedelta(days=n)).isoformat() for n in range(261)]

    def page(offset: int, limit: int) -> list[str]:
        answer = api.get(
            f"/query/batch/{batch_id}/status", params={"offset": offset, "limit": limit}
        ).json()
        assert answer["meta"]["paginate"]["total"] == 261
        return [item["split_info"]["start_date"] for item in answer["data"]]

    assert page(0, 1000) == days
    assert page(37, 150) == days[37:187]
    assert page(200, 100) == days[200:]
    assert page(0, 100) + page(100, 100) + page(200, 100) == days
    assert page(261, 50) == []


def test_split_by_month_cuts_at_calendar_months(api: httpx.Client) -> None:
    batch = create(
        api,
        queries=[query(start_date="2026-01-20", end_date="2026-03-05")],
        split_dates_policy="month",
    )
    items = statuses(api, batch["batch_id"])
    dates = [(i["split_info"]["start_date"], i["split_info"]["end_date"]) for i in items]
    assert dates == [
        ("2026-01-20", "2026-01-31"),
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-05"),
    ]


def test_splitting_per_account_without_accounts_means_every_account(api: httpx.Client) -> None:
    batch = create(api, queries=[query(ds_accounts=[])], split_accounts_policy="all")
    accounts = api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).json()
    every = [a["account_id"] for login in accounts["data"] for a in login["accounts"]]
    assert batch["query_amount"] == len(every)


def overlap(items: list[dict[str, Any]]) -> int:
    """The most sub-queries that were running at one moment, from their start and end times."""
    events = []
    for item in items:
        events.append((item["query_start_time"], 1))
        events.append((item["query_end_time"], -1))
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        peak = max(peak, running)
    return peak


def test_query_concurrency_is_never_exceeded_and_is_reached(api: httpx.Client) -> None:
    batch = create(
        api,
        queries=[query(settings={"demo_latency_ms": 100})],
        split_dates_policy="day",
        split_accounts_policy="all",
        query_concurrency=4,
    )
    assert batch["query_amount"] == 42
    polls = []
    while True:
        current = api.get(f"/query/batch/{batch['batch_id']}").json()["data"]
        polls.append(current["progress"]["running"])
        if current["status_code"] == "STOPPED":
            break
        time.sleep(0.02)
    assert max(polls) <= 4
    items = statuses(api, batch["batch_id"])
    assert all(i["status_code"] == "SUCCESS" for i in items)
    assert overlap(items) == 4


def test_cancel_stops_the_batch_and_keeps_what_was_collected(api: httpx.Client) -> None:
    batch = create(
        api,
        queries=[query(settings={"demo_latency_ms": 150})],
        split_dates_policy="day",
        split_accounts_policy="all",
        query_concurrency=3,
    )
    batch_id = batch["batch_id"]
    wait_until(
        lambda: api.get(f"/query/batch/{batch_id}").json()["data"]["progress"]["success"] >= 6
    )
    cancelled = api.delete(f"/query/batch/{batch_id}")
    assert cancelled.status_code == 200
    data = cancelled.json()["data"]
    assert data["status_code"] == "STOPPED"
    assert data["cancel_time"] and data["end_time"]
    counts = data["progress"]
    assert counts["queued"] == 0 and counts["running"] == 0
    assert counts["success"] >= 6 and counts["stopped"] > 0
    assert sum(counts.values()) == 42
    time.sleep(0.5)  # runs that were going do not change anything afterwards
    assert api.get(f"/query/batch/{batch_id}").json()["data"]["progress"] == counts
    items = statuses(api, batch_id)
    for item in items:
        if item["status_code"] == "SUCCESS":
            page = api.get(item["result_info"]["results_url"]).json()
            assert len(page["data"]) == 1 + 1
        else:
            assert item["status_code"] == "STOPPED"
            assert item["error_info"]["code"] == "QUERY_STOPPED"
            assert_error(
                api.get("/query/results", params={"schedule_id": item["schedule_id"]}),
                404,
                "QUERY_RESULTS_UNAVAILABLE",
            )
    # Cancelling again, or a stopped batch, is a harmless 200 that changes nothing.
    again = api.delete(f"/query/batch/{batch_id}")
    assert again.status_code == 200
    assert again.json()["data"]["cancel_time"] == data["cancel_time"]


def test_excluded_account_errors_keep_the_other_accounts(api: httpx.Client) -> None:
    failing = {"demo_fail_accounts": "ads-0002"}
    strict = create(api, queries=[query(settings=failing)])
    lenient = create(api, queries=[query(settings=failing)], add_exclude_account_errors=True)
    (failed,) = statuses(api, finished(api, strict["batch_id"])["batch_id"])
    assert failed["status_code"] == "FAILURE"
    assert failed["error_info"]["code"] == "ACCOUNT_ERROR"
    assert "ads-0002" in failed["error_info"]["description"]
    (kept,) = statuses(api, finished(api, lenient["batch_id"])["batch_id"])
    assert kept["status_code"] == "SUCCESS"
    assert set(kept["excluded_accounts"]) == {"ads-0002"}
    rows = api.get(kept["result_info"]["results_url"] + "&limit=100").json()["data"][1:]
    assert {r[1] for r in rows} == {"ads-0001", "ads-0003"}


def test_one_failing_sub_query_never_stops_the_rest(api: httpx.Client) -> None:
    batch = create(
        api,
        queries=[query(settings={"demo_fail_accounts": "ads-0002"})],
        split_accounts_policy="all",
    )
    done = finished(api, batch["batch_id"])
    assert done["progress"]["success"] == 2 and done["progress"]["failure"] == 1


def test_transient_errors_are_retried_before_a_query_fails(api: httpx.Client) -> None:
    batch = create(api, queries=[query(settings={"demo_transient_failures": 2})])
    done = finished(api, batch["batch_id"])
    assert done["progress"]["success"] == 1


def test_queries_run_in_the_order_given(api: httpx.Client) -> None:
    queries = [
        query(ds_accounts=f"ads-{n:04}", settings={"demo_latency_ms": 30}) for n in range(1, 11)
    ]
    batch = create(api, queries=queries, query_concurrency=1)
    items = statuses(api, finished(api, batch["batch_id"])["batch_id"])
    starts = [i["query_start_time"] for i in items]
    assert starts == sorted(starts)


def test_identical_queries_running_at_once_run_once_and_share(
    server: ServerProcess, api: httpx.Client
) -> None:
    same = query(settings={"demo_latency_ms": 300})
    batch = create(api, queries=[same, same, same], query_concurrency=3)
    items = statuses(api, finished(api, batch["batch_id"])["batch_id"])
    assert all(i["status_code"] == "SUCCESS" for i in items)
    rows = server.sql("SELECT result_id FROM queries WHERE batch_id = :b", b=batch["batch_id"])
    result_ids = {row[0] for row in rows}
    assert len(result_ids) == 1


def test_an_idempotency_key_returns_the_same_batch_for_the_same_body(api: httpx.Client) -> None:
    body = {"queries": [query()], "description": "once"}
    headers = {"Idempotency-Key": "create-once-" + str(time.time())}
    first = api.post("/query/batch", json=body, headers=headers)
    again = api.post("/query/batch", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["data"]["batch_id"] == first.json()["data"]["batch_id"]
    other = api.post("/query/batch", json={**body, "description": "twice"}, headers=headers)
    assert_error(other, 409, "CONFLICT_ERROR")


def test_download_holds_every_row_of_the_batch_in_each_format(api: httpx.Client) -> None:
    batch = create(
        api,
        queries=[query(), query(ds_id="DEMO_WEB", ds_accounts="web-0001", fields="date,sessions")],
        split_dates_policy="week",
    )
    batch_id = finished(api, batch["batch_id"])["batch_id"]
    expected: list[dict[str, Any]] = []
    for item in statuses(api, batch_id):
        page = api.get(item["result_info"]["results_url"] + "&limit=1000").json()
        fields = [f["field_id"] for f in page["meta"]["query"]["fields"]]
        for row in page["data"][1:]:
            expected.append(
                {"schedule_id": item["schedule_id"], **dict(zip(fields, row, strict=True))}
            )

    def as_text(record: dict[str, Any]) -> dict[str, str]:
        return {k: "" if v is None else str(v) for k, v in record.items() if v not in (None, "")}

    ndjson = api.get(f"/query/batch/{batch_id}/download").content.splitlines()
    assert [as_text(orjson.loads(line)) for line in ndjson] == [as_text(e) for e in expected]
    text = api.get(f"/query/batch/{batch_id}/download", params={"format": "csv"}).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert table and list(table[0]) == [
        "schedule_id",
        "date",
        "account_id",
        "impressions",
        "sessions",
    ]
    assert [as_text(r) for r in table] == [as_text(e) for e in expected]
    parquet = api.get(f"/query/batch/{batch_id}/download", params={"format": "parquet"}).content
    assert [as_text(r) for r in pq.read_table(io.BytesIO(parquet)).to_pylist()] == [
        as_text(e) for e in expected
    ]
    # Row groups gather the rows of many sub-queries, not one group per result.
    assert len(statuses(api, batch_id)) > 1
    assert pq.ParquetFile(io.BytesIO(parquet)).num_row_groups == 1


def test_batches_are_listed_newest_first_with_cursor_paging_and_filters(api: httpx.Client) -> None:
    made = [create(api, description=f"listed {n}")["batch_id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/query/batch", params=params).json()
        seen.extend(b["batch_id"] for b in page["data"])
        cursor = page["meta"]["next_cursor"]
        if not cursor:
            break
    assert [b for b in seen if b in made] == list(reversed(made))
    finished(api, made[-1])
    stopped = api.get("/query/batch", params={"status": "STOPPED", "limit": 1000}).json()["data"]
    assert made[-1] in [b["batch_id"] for b in stopped]
    assert all(b["status_code"] == "STOPPED" for b in stopped)
    future = (date.today() + timedelta(days=2)).isoformat()
    assert api.get("/query/batch", params={"created_after": future}).json()["data"] == []


def test_a_batch_scheduled_for_later_waits_until_then(api: httpx.Client) -> None:
    later = time.time() + 2
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(later)) + "Z"
    batch = create(api, schedule_time=when)
    time.sleep(1)
    assert api.get(f"/query/batch/{batch['batch_id']}").json()["data"]["status_code"] == "QUEUED"
    done = finished(api, batch["batch_id"])
    assert done["start_time"] >= when.replace("Z", "")


def test_another_tenant_cannot_see_or_cancel_a_batch(
    server: ServerProcess, api: httpx.Client
) -> None:
    made = run_cli(server, "keys", "create", "--name", "b", "--account", "other", "-q")
    assert made.returncode == 0, made.stderr
    other = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {made.stdout.strip()}"}
    )
    with other:
        batch = create(api)
        batch_id = batch["batch_id"]
        assert_error(other.get(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
        assert_error(other.get(f"/query/batch/{batch_id}/status"), 404, "NOT_FOUND")
        assert_error(other.delete(f"/query/batch/{batch_id}"), 404, "NOT_FOUND")
        assert_error(other.get(f"/query/batch/{batch_id}/download"), 404, "NOT_FOUND")
        assert_error(
            other.get("/query/status", params={"schedule_id": f"{batch_id}_query_1"}),
            404,
            "STATUS_NOT_FOUND",
        )
        assert batch_id not in [b["batch_id"] for b in other.get("/query/batch").json()["data"]]


def test_clean_data_types_give_numbers_as_numbers(api: httpx.Client) -> None:
    batch = create(api, queries=[query(fields="date,impressions,cost")], add_clean_data_types=True)
    (item,) = statuses(api, finished(api, batch["batch_id"])["batch_id"])
    rows = api.get(item["result_info"]["results_url"]).json()["data"]
    assert rows[0] == ["Date", "Impressions", "Cost"]
    assert all(isinstance(r[1], int) and isinstance(r[2], float) for r in rows[1:])
    plain = create(api, queries=[query(fields="date,impressions,cost")])
    (other,) = statuses(api, finished(api, plain["batch_id"])["batch_id"])
    text_rows = api.get(other["result_info"]["results_url"]).json()["data"]
    assert all(isinstance(v, str) for r in text_rows[1:] for v in r)
    assert [[str(v) for v in r] for r in rows[1:]] == text_rows[1:]
