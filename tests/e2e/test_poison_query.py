"""A query whose every run dies with the process ends FAILURE after its retries, instead of
being run again at every restart (issue 10, defect 1)."""

from __future__ import annotations

import uuid
from pathlib import Path

from support import ServerProcess, client, wait_until


def test_a_query_killed_on_every_attempt_is_abandoned_after_its_retries(data_dir: Path) -> None:
    env = {"QB_RETRIES": "1"}  # two attempts in all
    schedule_id = "poison_" + uuid.uuid4().hex[:12]
    params = {
        "schedule_id": schedule_id,
        "ds_id": "DEMO_ADS",
        "ds_accounts": "ads-0001",
        "fields": "date,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-02",
        # Runs for ten minutes: every run is still going when its server is killed.
        "settings": '{"demo_latency_ms": 600000}',
        "sync_timeout": 0,
    }
    for attempt in (1, 2):
        server = ServerProcess(data_dir, env).start()
        try:
            if attempt == 1:
                with client(server) as api:
                    assert api.get("/query/data/json", params=params).status_code == 200
            wait_until(
                lambda server=server, attempt=attempt: (
                    server.sql(
                        "SELECT status, attempt FROM queries WHERE schedule_id = :s", s=schedule_id
                    )
                    == [("RUNNING", attempt)]
                )
            )
        finally:
            server.kill()

    last = ServerProcess(data_dir, env).start()
    try:
        with client(last) as api:
            status = {"schedule_id": schedule_id}

            def ended() -> dict[str, object] | None:
                meta: dict[str, object] = api.get("/query/status", params=status).json()["meta"]
                return meta if meta["status_code"] in ("SUCCESS", "FAILURE", "STOPPED") else None

            meta = wait_until(ended)
        assert meta["status_code"] == "FAILURE", meta
        assert meta["error"] == {
            "code": "QUERY_ABANDONED",
            "message": "Abandoned after 2 attempts",
            "description": (
                "Every run of this query was interrupted before it ended: the server or "
                "worker stopped, or the run stopped answering. It is not tried again."
            ),
        }
    finally:
        last.stop()
