"""Scale-out under failure, with real processes: PostgreSQL, Redis, Celery workers, API nodes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from supermetrics import SupermetricsClient

from support import (
    ADMIN_KEY,
    DEPLOYMENT,
    PrivateRedis,
    ServerProcess,
    client,
    free_port,
    kill_worker,
    wait_until,
)
from transfer_support import daily_transfer


def day_batch(days: int, latency_ms: int, concurrency: int) -> dict[str, Any]:
    """One sub-query per day (of January 2026) and per account (two)."""
    return {
        "queries": [
            {
                "ds_id": "DEMO_WEB",
                "ds_accounts": ["web-0001", "web-0002"],
                "fields": "date,account_id,sessions",
                "start_date": "2026-01-01",
                "end_date": f"2026-01-{days:02}",
                "settings": {"demo_latency_ms": latency_ms},
            }
        ],
        "split_dates_policy": "day",
        "split_accounts_policy": "all",
        "query_concurrency": concurrency,
    }


def batch_of(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = api.get(f"/query/batch/{batch_id}").json()["data"]
    return data


def assert_every_result_stored_once(
    server: ServerProcess, api: httpx.Client, batch_id: str
) -> None:
    """Each sub-query succeeded with exactly its rows, and no run left rows behind twice."""
    items = api.get(f"/query/batch/{batch_id}/status", params={"limit": 1000}).json()["data"]
    assert all(i["status_code"] == "SUCCESS" for i in items), [i["status_code"] for i in items]
    for item in items:
        rows = api.get(item["result_info"]["results_url"]).json()["data"][1:]
        assert rows == [
            [item["split_info"]["start_date"], item["split_info"]["ds_accounts"][0], rows[0][2]]
        ]
    ((results,),) = server.sql(
        "SELECT count(DISTINCT result_id) FROM queries WHERE batch_id = :b", b=batch_id
    )
    ((chunks,),) = server.sql(
        "SELECT count(*) FROM result_chunks WHERE result_id IN "
        "(SELECT result_id FROM queries WHERE batch_id = :b)",
        b=batch_id,
    )
    assert results == len(items) and chunks == len(items)
    orphans = server.sql(
        "SELECT count(*) FROM result_chunks WHERE result_id NOT IN (SELECT id FROM results)"
    )[0][0]
    assert orphans == 0


def test_a_batch_completes_when_a_worker_is_killed_and_every_result_is_stored_once(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "node", workers=2).start()
    try:
        with client(server) as api:
            batch_id = api.post("/query/batch", json=day_batch(20, 300, 10)).json()["data"][
                "batch_id"
            ]
            wait_until(lambda: batch_of(api, batch_id)["progress"]["success"] >= 4)
            kill_worker(server.worker_processes[0])
            wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED", timeout=90)
            assert batch_of(api, batch_id)["progress"]["success"] == 40
            assert_every_result_stored_once(server, api, batch_id)
    finally:
        server.stop()


def test_two_api_nodes_on_one_database_serve_at_once_without_double_dispatch(
    tmp_path: Path,
) -> None:
    # No process dies here: the default leases, not the tests' short ones, so that a
    # sub-query slow to start on a busy machine is not taken back and run twice legitimately.
    leases = {"QB_LEASE_SECONDS": "30", "QB_QUEUED_LEASE_SECONDS": "120"}
    first = ServerProcess(tmp_path / "cluster", leases, workers=2).start()
    second = ServerProcess(tmp_path / "cluster", leases, workers=0).start()
    try:
        with client(first) as one, client(second) as two:
            ids = [
                node.post("/query/batch", json=day_batch(15, 50, 5)).json()["data"]["batch_id"]
                for node in (one, two, one, two)
            ]
            for batch_id in ids:
                # Each node answers for every batch, whichever node took it.
                wait_until(
                    lambda b=batch_id: batch_of(two, b)["status_code"] == "STOPPED", timeout=60
                )
                seen_by_one, seen_by_two = batch_of(one, batch_id), batch_of(two, batch_id)
                assert seen_by_one.pop("links") != seen_by_two.pop("links")  # each its own URL
                assert seen_by_one == seen_by_two
            for batch_id in ids:
                assert_every_result_stored_once(first, one, batch_id)
            attempts = first.sql("SELECT max(attempt) FROM queries")[0][0]
            # Nothing was handed out twice (and if it was, the nodes' logs say why).
            assert attempts == 1, [
                line
                for log in (first.log(), second.log(), first.worker_log())
                for line in log.splitlines()
                if "WARNING" in line or "ERROR" in line or "leader" in line or "back" in line
            ]
            leaders = [
                "querybatch_node_leader 1.0" in httpx.get(node.url + "/metrics").text
                for node in (first, second)
            ]
            assert sorted(leaders) == [False, True]
    finally:
        second.stop()
        first.stop()


def test_when_the_leading_node_dies_another_takes_over_the_batch(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "cluster", workers=1).start()
    second = ServerProcess(tmp_path / "cluster", workers=1).start()
    try:
        with client(second) as api:
            batch_id = api.post("/query/batch", json=day_batch(20, 200, 4)).json()["data"][
                "batch_id"
            ]
            wait_until(lambda: batch_of(api, batch_id)["progress"]["success"] >= 4)
            first.kill()
            wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED", timeout=90)
            assert batch_of(api, batch_id)["progress"]["success"] == 40
            assert_every_result_stored_once(second, api, batch_id)
    finally:
        second.stop()
        first.stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    redis = PrivateRedis(binary)
    redis.start()
    yield redis
    redis.stop()


def test_a_batch_completes_when_the_broker_restarts_mid_batch(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    server = ServerProcess(
        tmp_path / "node", {"QB_BROKER_URL": private_redis.url}, workers=2
    ).start()
    try:
        with client(server) as api:
            batch_id = api.post("/query/batch", json=day_batch(20, 200, 8)).json()["data"][
                "batch_id"
            ]
            wait_until(lambda: batch_of(api, batch_id)["progress"]["success"] >= 4)
            # Everything queued in the broker is lost with it.
            private_redis.stop()
            assert httpx.get(server.url + "/healthz").status_code == 503
            time.sleep(1)
            private_redis.start()
            wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED", timeout=120)
            assert batch_of(api, batch_id)["progress"]["success"] == 40
            assert_every_result_stored_once(server, api, batch_id)
            assert httpx.get(server.url + "/healthz").json()["executor"] == "ok"
    finally:
        server.stop()


def test_health_says_which_dependency_is_unreachable(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    server = ServerProcess(
        tmp_path / "node", {"QB_BROKER_URL": private_redis.url}, workers=0
    ).start()
    try:
        assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
        private_redis.stop()
        health = httpx.get(server.url + "/healthz")
        assert health.status_code == 503
        body = health.json()
        assert (body["status"], body["store"], body["executor"]) == (
            "unavailable",
            "ok",
            "unreachable",
        )
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_without_their_broker_or_database(
    tmp_path: Path, pg_schema: tuple[str, str], command: str
) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    dead_database = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    base = {
        "QB_DATA_DIR": str(tmp_path),
        "QB_EXECUTOR": "celery",
        "QB_PORT": str(free_port()),
        "QB_DATABASE_URL": pg_schema[0],
        "QB_BROKER_URL": dead_broker,
    }
    for env, expected in (
        (base, "broker"),
        (
            {**base, "QB_DATABASE_URL": dead_database, "QB_BROKER_URL": DEPLOYMENT["redis"]},
            "database",
        ),
        ({**base, "QB_BROKER_URL": "amqp://"}, "QB_BROKER_URL"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "querybatch", command],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines and lines[0].startswith("error:") and expected in done.stderr, done.stderr


def test_two_api_nodes_make_and_load_each_transfer_run_once(tmp_path: Path) -> None:
    """A daily transfer and a backfill made through one node of two: each data date gets
    one run, whichever node leads, and the destination holds each row once."""
    leases = {"QB_LEASE_SECONDS": "30", "QB_QUEUED_LEASE_SECONDS": "120"}
    first = ServerProcess(tmp_path / "cluster", leases, workers=1).start()
    second = ServerProcess(tmp_path / "cluster", leases, workers=0).start()
    try:
        with client(second) as api:
            team_id = api.get("/whoami").json()["team_id"]
        with SupermetricsClient(api_key=ADMIN_KEY, base_url=second.url) as sdk:
            transfer_id = daily_transfer(
                sdk, team_id, "b.duckdb", ["ads-0001", "ads-0003"], 2, name="Two nodes"
            )
            sdk.backfills.create(
                team_id=team_id,
                transfer_id=transfer_id,
                range_start=date(2026, 3, 1),
                range_end=date(2026, 3, 6),
            )

            def runs() -> list[Any]:
                return list(
                    sdk.transfers.list_runs(
                        team_id=team_id,
                        transfer_id=transfer_id,
                        start_date=datetime(2000, 1, 1),
                        end_date=datetime(2100, 1, 1),
                    )
                )

            wait_until(
                lambda: len(runs()) == 8 and all(r.status == "COMPLETED" for r in runs()),
                timeout=120,
            )
            made = runs()
            assert len({(r.data_date, r.type_) for r in made}) == len(made) == 8
        path = first.data_dir / "destinations" / str(team_id) / "b.duckdb"
        with duckdb.connect(str(path), read_only=True) as conn:
            loaded = conn.execute(
                "SELECT _qb_data_date, _qb_account, campaign_id FROM main.demo_ads"
            ).fetchall()
        assert len(loaded) == len(set(loaded)) == sum(r.total_rows for r in made) > 0
    finally:
        second.stop()
        first.stop()
