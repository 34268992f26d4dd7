"""Nothing accepted is lost: a server killed mid-query finishes the query after a restart."""

from __future__ import annotations

import uuid
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
