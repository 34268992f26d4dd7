"""A large batch is answered once its first slice is stored; its other sub-queries are stored
behind the answer, and every read sees them as if they had all been stored at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support import ServerProcess, assert_error, client, run_cli, running_server, wait_until

SLICE = 100  # sub-queries stored with the answer, and per write after it
ACCOUNTS = [f"ads-{n:04d}" for n in range(1, 9)]
DAYS = 250  # 8 accounts x 250 days: 2,000 sub-queries from one query


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("behind"), QB_BATCH_STORE_SLICE=str(SLICE)
    ) as started:
        yield started


def body(*, tomorrow: bool = False, latency_ms: int = 0) -> dict[str, Any]:
    made: dict[str, Any] = {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": ACCOUNTS,
                "fields": "date,clicks",
                "start_date": "2025-01-01",
                "end_date": (datetime(2025, 1, 1) + timedelta(days=DAYS - 1)).date().isoformat(),
                "settings": {"demo_latency_ms": latency_ms},
            }
        ],
        "split_accounts_policy": "all",
        "split_dates_policy": "day",
        "query_concurrency": 50,
    }
    if tomorrow:
        made["schedule_time"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return made


def create(api: httpx.Client, made: dict[str, Any]) -> str:
    answer = api.post("/query/batch", json=made)
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["query_amount"] == len(ACCOUNTS) * DAYS
    return str(answer.json()["data"]["batch_id"])


def every_item(api: httpx.Client, batch_id: str, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        params = {"offset": len(items), "limit": 500, **filters}
        page = api.get(f"/query/batch/{batch_id}/status", params=params)
        assert page.status_code == 200, page.text
        if not page.json()["data"]:
            return items
        items += page.json()["data"]


def test_the_last_sub_queries_of_a_batch_just_answered_read_as_stored(
    server: ServerProcess,
) -> None:
    total = len(ACCOUNTS) * DAYS
    with client(server) as api:
        batch_id = create(api, body(tomorrow=True))
        last = api.get(f"/query/batch/{batch_id}/status", params={"offset": total - 2})
        assert last.status_code == 200, last.text
        shown = [(q["schedule_id"], q["status_code"]) for q in last.json()["data"]]
        assert shown == [
            (f"{batch_id}_query_{total - 1}", "SCHEDULED"),
            (f"{batch_id}_query_{total}", "SCHEDULED"),
        ]
        assert last.json()["data"][-1]["split_info"]["ds_accounts"] == [ACCOUNTS[-1]]
        status = api.get("/query/status", params={"schedule_id": f"{batch_id}_query_{total}"})
        assert status.json()["meta"]["status_code"] == "SCHEDULED", status.text

        items = every_item(api, batch_id)
        assert [q["schedule_id"] for q in items] == [
            f"{batch_id}_query_{n}" for n in range(1, total + 1)
        ]
        # Pieces in the order of the query's split: each account's days in turn.
        days = {(q["split_info"]["ds_accounts"][0], q["split_info"]["start_date"]) for q in items}
        assert len(days) == total
        assert server.sql("SELECT n_stored, plan FROM batches WHERE id = :b", b=batch_id) == [
            (None, None)
        ]
        # An account's filter reads every stored sub-query of it.
        one = every_item(api, batch_id, account=ACCOUNTS[3])
        assert len(one) == DAYS


def test_a_batch_stored_behind_its_answer_runs_every_sub_query(server: ServerProcess) -> None:
    total = len(ACCOUNTS) * DAYS
    with client(server) as api:
        batch_id = create(api, body())
        done = wait_until(
            lambda: (
                data
                if (data := api.get(f"/query/batch/{batch_id}").json()["data"])["status_code"]
                == "STOPPED"
                else None
            ),
            timeout=120,
        )
        assert done["status_code"] == "STOPPED"
        statuses = {q["status_code"] for q in every_item(api, batch_id)}
        assert statuses == {"SUCCESS"}
        ((succeeded,),) = server.sql(
            "SELECT count(*) FROM queries WHERE batch_id = :b AND status = 'SUCCESS'", b=batch_id
        )
        assert succeeded == total


def test_a_batch_cancelled_before_it_is_all_stored_stops_every_sub_query(
    server: ServerProcess,
) -> None:
    total = len(ACCOUNTS) * DAYS
    with client(server) as api:
        batch_id = create(api, body(latency_ms=200))
        cancelled = api.delete(f"/query/batch/{batch_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["data"]["status_code"] == "STOPPED"
        items = every_item(api, batch_id)
        assert len(items) == total
        stopped = [q for q in items if q["status_code"] == "STOPPED"]
        assert {q["error_info"]["message"] for q in stopped} == {"Cancelled"}
        assert {q["status_code"] for q in items} <= {"STOPPED", "SUCCESS"}
        ((queued, running, success, stopped_n),) = server.sql(
            "SELECT n_queued, n_running, n_success, n_stopped FROM batches WHERE id = :b",
            b=batch_id,
        )
        assert (queued, running) == (0, 0)
        assert success + stopped_n == total
        assert stopped_n == len(stopped)


def test_another_tenants_sub_query_of_such_a_batch_is_not_found(
    server: ServerProcess,
) -> None:
    made = run_cli(server, "keys", "create", "--name", "b", "--account", "other", "-q")
    assert made.returncode == 0, made.stderr
    with client(server) as api, client(server, made.stdout.strip()) as other:
        batch_id = create(api, body(tomorrow=True))
        last = {"schedule_id": f"{batch_id}_query_{len(ACCOUNTS) * DAYS}"}
        started = time.monotonic()
        assert_error(other.get("/query/status", params=last), 404, "STATUS_NOT_FOUND")
        assert time.monotonic() - started < 5  # not held until it is stored
        assert_error(other.get(f"/query/batch/{batch_id}/status"), 404, "NOT_FOUND")


def test_a_poll_waiting_for_a_sub_query_not_stored_yet_holds_no_other_poll_up(
    server: ServerProcess,
) -> None:
    # 2 queries x 25 accounts x 2,000 days: 100,000 sub-queries, stored 100 per write.
    accounts = [f"ads-{n:04d}" for n in range(1, 26)]
    total = 2 * len(accounts) * 2000
    made = body(tomorrow=True)
    made["queries"] = [
        {
            "ds_id": "DEMO_ADS",
            "ds_accounts": accounts,
            "fields": "date,clicks",
            "start_date": start,
            "end_date": (datetime.fromisoformat(start) + timedelta(days=1999)).date().isoformat(),
        }
        for start in ("2010-01-01", "2016-01-01")
    ]
    with client(server) as api:
        answer = api.post("/query/batch", json=made)
        assert answer.status_code == 201, answer.text
        batch_id = answer.json()["data"]["batch_id"]
        with ThreadPoolExecutor(1) as pool, client(server) as waiting:
            last = pool.submit(
                waiting.get, f"/query/batch/{batch_id}/status", params={"offset": total - 1}
            )
            answered_while_waiting = 0
            while not last.done() and answered_while_waiting < 5:
                started = time.monotonic()
                polled = api.get(f"/query/batch/{batch_id}")
                assert polled.status_code == 200, polled.text
                assert time.monotonic() - started < 2.0
                answered_while_waiting += 0 if last.done() else 1
            assert answered_while_waiting == 5  # every one of them while the page waited
            page = last.result(timeout=120)
        assert [q["schedule_id"] for q in page.json()["data"]] == [f"{batch_id}_query_{total}"]
