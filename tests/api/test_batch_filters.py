"""A batch's status pages filtered by status, account and date, and its failures by reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client, run_cli, wait_until

ACCOUNTS = [f"ads-{n:04d}" for n in range(1, 6)]
FAILING = ["ads-0002", "ads-0004"]
DAYS = 6


@pytest.fixture(scope="module")
def batch_id(server: ServerProcess) -> str:
    """A stopped batch of 5 accounts x 6 days, two of whose accounts fail."""
    body = {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": ACCOUNTS,
                "fields": "date,clicks",
                "start_date": "2026-01-01",
                "end_date": f"2026-01-{DAYS:02d}",
                "settings": {"demo_latency_ms": 0, "demo_fail_accounts": FAILING},
            }
        ],
        "split_accounts_policy": "all",
        "split_dates_policy": "day",
    }
    with client(server) as api:
        made = api.post("/query/batch", json=body)
        assert made.status_code == 201, made.text
        ident: str = made.json()["data"]["batch_id"]
        wait_until(
            lambda: api.get(f"/query/batch/{ident}").json()["data"]["status_code"] == "STOPPED"
        )
    return ident


def every_item(api: httpx.Client, batch_id: str, limit: int, **filters: Any) -> list[Any]:
    """Every item of the (filtered) status pages, ``limit`` at a time, checking each page."""
    items: list[Any] = []
    while True:
        params = {"offset": len(items), "limit": limit, **filters}
        answer = api.get(f"/query/batch/{batch_id}/status", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["meta"]["paginate"]["offset"] == len(items)
        total = page["meta"]["paginate"]["total"]
        items += page["data"]
        if not page["data"]:
            assert len(items) == total
            return items


def schedule_ids(items: list[Any]) -> list[str]:
    return [item["schedule_id"] for item in items]


def holds(item: Any, account: str | None, day: str | None, statuses: set[str] | None) -> bool:
    split = item["split_info"]
    if statuses and item["status_code"] not in statuses:
        return False
    if account and not any(account.lower() in a.lower() for a in split["ds_accounts"]):
        return False
    return not day or split["start_date"] <= day <= split["end_date"]


FILTERS = [
    pytest.param({"status": "FAILURE"}, None, None, {"FAILURE"}, 12, id="status"),
    pytest.param(
        {"status": ["FAILURE", "STOPPED"]},
        None,
        None,
        {"FAILURE", "STOPPED"},
        12,
        id="two statuses",
    ),
    pytest.param(
        {"status": "success,failure"}, None, None, {"SUCCESS", "FAILURE"}, 30, id="comma list"
    ),
    pytest.param({"account": "ads-0003"}, "ads-0003", None, None, 6, id="account"),
    pytest.param({"account": "ADS-000"}, "ads-000", None, None, 30, id="part of an account"),
    pytest.param({"date": "2026-01-03"}, None, "2026-01-03", None, 5, id="date"),
    pytest.param(
        {"status": "SUCCESS", "account": "0001", "date": "2026-01-02"},
        "0001",
        "2026-01-02",
        {"SUCCESS"},
        1,
        id="all three",
    ),
    pytest.param(
        {"status": "FAILURE", "account": "ads-0003"}, "ads-0003", None, {"FAILURE"}, 0, id="none"
    ),
]


@pytest.mark.parametrize(("filters", "account", "day", "statuses", "count"), FILTERS)
def test_a_filter_pages_through_exactly_the_sub_queries_it_keeps_in_batch_order(
    api: httpx.Client,
    batch_id: str,
    filters: dict[str, Any],
    account: str | None,
    day: str | None,
    statuses: set[str] | None,
    count: int,
) -> None:
    everything = every_item(api, batch_id, 1000)
    assert len(everything) == len(ACCOUNTS) * DAYS
    kept = [item for item in everything if holds(item, account, day, statuses)]
    assert len(kept) == count
    assert schedule_ids(every_item(api, batch_id, 4, **filters)) == schedule_ids(kept)


def test_a_filtered_page_past_the_end_is_empty_with_the_total(
    api: httpx.Client, batch_id: str
) -> None:
    answer = api.get(
        f"/query/batch/{batch_id}/status", params={"status": "FAILURE", "offset": 12}
    ).json()
    assert answer["data"] == []
    assert answer["meta"]["paginate"] == {"offset": 12, "limit": 100, "total": 12}


BAD_FILTERS = [
    pytest.param({"status": "BROKEN"}, id="unknown status"),
    pytest.param({"status": ""}, id="empty status"),
    pytest.param({"status": ",".join(["FAILURE"] * 7)}, id="too many statuses"),
    pytest.param({"account": ""}, id="empty account"),
    pytest.param({"account": "a" * 65}, id="account too long"),
    pytest.param({"account": 'ads","x'}, id="account with a quote"),
    pytest.param({"account": "ads%"}, id="account with a wildcard"),
    pytest.param({"date": "2026-02-31"}, id="no such date"),
    pytest.param({"date": "20260101"}, id="date not ISO"),
]


@pytest.mark.parametrize("filters", BAD_FILTERS)
def test_a_bad_filter_is_a_400_invalid_filter(
    api: httpx.Client, batch_id: str, filters: dict[str, Any]
) -> None:
    answer = api.get(f"/query/batch/{batch_id}/status", params=filters)
    body = assert_error(answer, 400, "INVALID_FILTER")
    assert f"'{next(iter(filters))}'" in str(body)


def test_failures_are_grouped_by_code_and_message_with_accounts_and_dates(
    api: httpx.Client, batch_id: str
) -> None:
    answer = api.get(f"/query/batch/{batch_id}/failures")
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["meta"]["batch_id"] == batch_id
    assert summary["meta"]["failures"] == 12
    assert summary["meta"]["groups_truncated"] is False
    assert summary["data"] == [
        {
            "code": "ACCOUNT_ERROR",
            "message": f"Data source failed for account(s): {account}",
            "count": DAYS,
            "first_date": "2026-01-01",
            "last_date": f"2026-01-{DAYS:02d}",
            "accounts": [{"account": account, "count": DAYS}],
            "account_count": 1,
        }
        for account in FAILING
    ]


def test_a_batch_without_failures_has_no_failure_groups(api: httpx.Client) -> None:
    made = api.post(
        "/query/batch",
        json={
            "queries": [
                {
                    "ds_id": "DEMO_ADS",
                    "ds_accounts": ["ads-0001"],
                    "fields": "date,clicks",
                    "start_date": "2026-01-01",
                    "end_date": "2026-01-02",
                    "settings": {"demo_latency_ms": 0},
                }
            ]
        },
    )
    summary = api.get(f"/query/batch/{made.json()['data']['batch_id']}/failures").json()
    assert summary["meta"]["failures"] == 0
    assert summary["data"] == []


def test_another_tenant_gets_a_404_for_the_failures_and_filtered_pages(
    server: ServerProcess, batch_id: str
) -> None:
    made = run_cli(server, "keys", "create", "--name", "f", "--account", "filters-other", "-q")
    assert made.returncode == 0, made.stderr
    with client(server, made.stdout.strip()) as other:
        assert_error(other.get(f"/query/batch/{batch_id}/failures"), 404, "NOT_FOUND")
        filtered = other.get(f"/query/batch/{batch_id}/status", params={"status": "FAILURE"})
        assert_error(filtered, 404, "NOT_FOUND")


def test_a_viewer_reads_the_failures_and_filtered_pages(
    api: httpx.Client, server: ServerProcess, batch_id: str
) -> None:
    made = api.post("/keys", json={"name": "viewer-failures", "role": "viewer"})
    with client(server, made.json()["secret"]) as viewer:
        assert viewer.get(f"/query/batch/{batch_id}/failures").json()["meta"]["failures"] == 12
        page = viewer.get(f"/query/batch/{batch_id}/status", params={"account": "ads-0004"})
        assert page.json()["meta"]["paginate"]["total"] == DAYS


def test_filters_asked_while_the_opened_page_s_rows_are_written_keep_exactly_theirs(
    api: httpx.Client,
) -> None:
    # A running batch: the failure summary (the batch page opening) starts writing the
    # filters' rows in the background, and the filters asked at once wait for the same rows.
    made = api.post(
        "/query/batch",
        json={
            "queries": [
                {
                    "ds_id": "DEMO_ADS",
                    "ds_accounts": ACCOUNTS,
                    "fields": "date,clicks",
                    "start_date": "2026-02-01",
                    "end_date": "2026-02-10",
                    "settings": {"demo_latency_ms": 200},
                }
            ],
            "split_accounts_policy": "all",
            "split_dates_policy": "day",
        },
    )
    assert made.status_code == 201, made.text
    ident = made.json()["data"]["batch_id"]
    assert api.get(f"/query/batch/{ident}/failures").status_code == 200
    path = f"/query/batch/{ident}/status"
    by_account = api.get(path, params={"account": "ADS-0002", "limit": 3}).json()
    assert by_account["meta"]["paginate"]["total"] == 10
    assert {item["split_info"]["ds_accounts"][0] for item in by_account["data"]} == {"ads-0002"}
    by_day = api.get(path, params={"date": "2026-02-10", "offset": 4}).json()
    assert by_day["meta"]["paginate"]["total"] == len(ACCOUNTS)
    assert [item["split_info"]["start_date"] for item in by_day["data"]] == ["2026-02-10"]
    api.delete(f"/query/batch/{ident}")
