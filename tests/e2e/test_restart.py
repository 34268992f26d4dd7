"""Nothing accepted is lost: a server killed mid-query finishes the query after a restart."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from support import ServerProcess, client, wait_until


def test_a_query_running_when_the_server_is_killed_finishes_after_the_restart(
    data_dir: Path,
) -> None:
    schedule_id = "restart_" + uuid.uuid4().hex[:12]
    params = {
        "schedule_id": schedule_id,
        "ds_id": "DEMO_ADS",
        "ds_accounts": "ads-0001",
        "fields": "date,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-05",
        "settings": '{"demo_latency_ms": 3000}',
        "sync_timeout": 0,
    }
    first = ServerProcess(data_dir).start()
    try:
        with client(first) as api:
            assert api.get("/query/data/json", params=params).json()["meta"]["status_code"]
            wait_until(
                lambda: (
                    api.get("/query/status", params={"schedule_id": schedule_id}).json()["meta"][
                        "status_code"
                    ]
                    == "RUNNING"
                )
            )
    finally:
        first.kill()
    ((status,),) = first.sql("SELECT status FROM queries WHERE schedule_id = :s", s=schedule_id)
    assert status == "RUNNING"  # as the crash left it

    second = ServerProcess(data_dir).start()
    try:
        with client(second) as api:
            done = api.get(
                "/query/data/json", params={"schedule_id": schedule_id, "sync_timeout": 30}
            ).json()
            assert done["meta"]["status_code"] == "SUCCESS"
            assert len(done["data"]) == 1 + 5
    finally:
        second.stop()


def test_the_first_start_prints_an_admin_key_once_and_it_works(data_dir: Path) -> None:
    first = ServerProcess(data_dir, {"QB_ADMIN_KEY": ""}).start()
    try:
        lines = first.log().splitlines()
        at = next(i for i, line in enumerate(lines) if "admin API key" in line)
        key = lines[at + 1].strip()
        assert key.startswith("qb_")
        with client(first, key) as api:
            assert api.get("/query/accounts", params={"ds_id": "DEMO_ADS"}).status_code == 200
    finally:
        first.stop()
    second = ServerProcess(data_dir, {"QB_ADMIN_KEY": ""}).start()
    try:
        assert "admin API key" not in second.log()
    finally:
        second.stop()


def test_a_large_batch_killed_while_stored_in_part_is_stored_whole_after_the_restart(
    data_dir: Path,
) -> None:
    # 2 queries x 25 accounts x 2,000 days: answered after 1,000, the rest stored behind.
    accounts = [f"ads-{n:04d}" for n in range(1, 26)]
    total = 2 * len(accounts) * 2000
    body = {
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": accounts,
                "fields": "date,clicks",
                "start_date": start,
                "end_date": (date.fromisoformat(start) + timedelta(days=1999)).isoformat(),
            }
            for start in ("2010-01-01", "2016-01-01")
        ],
        "split_accounts_policy": "all",
        "split_dates_policy": "day",
        "schedule_time": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    env = {"QB_BATCH_STORE_SLICE": "1000"}
    first = ServerProcess(data_dir, env).start()
    try:
        with client(first) as api:
            made = api.post("/query/batch", json=body)
            assert made.status_code == 201, made.text
            batch_id = made.json()["data"]["batch_id"]
    finally:
        first.kill()
    ((stored,),) = first.sql("SELECT n_stored FROM batches WHERE id = :b", b=batch_id)
    assert stored is not None and 1000 <= stored < total  # as the crash left it

    second = ServerProcess(data_dir, env).start()
    try:
        with client(second) as api:
            last = api.get(f"/query/batch/{batch_id}/status", params={"offset": total - 1})
            assert [q["schedule_id"] for q in last.json()["data"]] == [
                f"{batch_id}_query_{total}"
            ], last.text
            wait_until(
                lambda: (
                    second.sql("SELECT n_stored FROM batches WHERE id = :b", b=batch_id)
                    == [(None,)]
                )
            )
        ((count, positions, highest),) = second.sql(
            "SELECT count(*), count(DISTINCT position), max(position) FROM queries"
            " WHERE batch_id = :b",
            b=batch_id,
        )
        assert count == positions == highest == total
        assert "storing the sub-queries of batch" in second.log()
    finally:
        second.stop()
