"""The tenant's activity (``GET /query/activity``) through a real server process."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client, run_cli, wait_until


def new_tenant(server: ServerProcess) -> httpx.Client:
    """A client with the admin key of an account of its own (nothing else ran there)."""
    account = f"act-{uuid.uuid4().hex[:10]}"
    made = run_cli(server, "keys", "create", "--name", account, "--account", account, "-q")
    assert made.returncode == 0, made.stderr
    return client(server, made.stdout.strip())


def failing_batch(api: httpx.Client, accounts: int, days: int, failing: list[str]) -> str:
    """A batch of ``accounts`` x ``days`` demo sub-queries in which ``failing`` accounts fail,
    run to its end; its id."""
    body = {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": [f"ads-{n:04d}" for n in range(1, accounts + 1)],
                "fields": "date,clicks",
                "start_date": "2026-01-01",
                "end_date": f"2026-01-{days:02d}",
                "settings": {"demo_latency_ms": 0, "demo_fail_accounts": failing},
            }
        ],
        "split_accounts_policy": "all",
        "split_dates_policy": "day",
    }
    made = api.post("/query/batch", json=body)
    assert made.status_code == 201, made.text
    batch_id: str = made.json()["data"]["batch_id"]
    wait_until(
        lambda: api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED",
        timeout=60,
    )
    return batch_id


def activity(api: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = api.get("/query/activity", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_finished_sub_queries_are_counted_per_minute_and_failures_grouped_by_reason(
    server: ServerProcess,
) -> None:
    with new_tenant(server) as api, new_tenant(server) as other:
        failing_batch(api, accounts=3, days=3, failing=["ads-0002", "ads-0003"])
        failing_batch(api, accounts=2, days=2, failing=["ads-0002"])

        body = activity(api)
        minutes = body["data"]["per_minute"]
        assert body["meta"]["minutes"] == 60
        assert len(minutes) == 60
        starts = [datetime.fromisoformat(m["minute"]).timestamp() for m in minutes]
        assert starts == [starts[0] + 60 * n for n in range(60)]
        assert body["meta"]["since"] == minutes[0]["minute"]
        totals = {k: sum(m[k] for m in minutes) for k in ("success", "failure", "stopped")}
        assert totals == {"success": 5, "failure": 8, "stopped": 0}
        message = "Data source failed for account(s): {}"
        assert body["data"]["failures"] == [
            {
                "error_code": "ACCOUNT_ERROR",
                "error_message": message.format("ads-0002"),
                "count": 5,
                "batches": 2,
            },
            {
                "error_code": "ACCOUNT_ERROR",
                "error_message": message.format("ads-0003"),
                "count": 3,
                "batches": 1,
            },
        ]
        assert body["data"]["more_failures"] is False
        # The current minute is the window's last, so a window of one minute holds it alone.
        last = activity(api, minutes=1)["data"]["per_minute"]
        assert len(last) == 1 and last[0]["minute"] >= minutes[-1]["minute"]

        nothing = activity(other, minutes=1440)["data"]
        assert len(nothing["per_minute"]) == 1440
        assert all(m["success"] == m["failure"] == m["stopped"] == 0 for m in nothing["per_minute"])
        assert nothing["failures"] == []


@pytest.mark.parametrize("minutes", ["0", "1441", "-5", "sixty", "1e3", ""])
def test_a_window_outside_one_minute_to_a_day_is_a_bad_request(
    api: httpx.Client, minutes: str
) -> None:
    error = assert_error(
        api.get("/query/activity", params={"minutes": minutes}), 400, "BAD_REQUEST"
    )
    assert "'minutes'" in error["error"]["message"]
