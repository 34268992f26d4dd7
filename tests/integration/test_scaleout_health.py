"""Scale-out health: /healthz and /metrics say whether any worker is alive to take the work."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from support import ServerProcess, client, wait_until

BATCH = {
    "queries": [
        {
            "ds_id": "DEMO_WEB",
            "ds_accounts": ["web-0001"],
            "fields": "date,sessions",
            "start_date": "2026-01-01",
            "end_date": "2026-01-03",
        }
    ],
    "split_dates_policy": "day",
}


def health(server: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(server.url + "/healthz").json()
    return body


def workers_gauge(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics").text
    found = re.search(r"^querybatch_workers_alive (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found[1])


def test_a_queued_batch_with_no_worker_makes_healthz_degraded(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", workers=0).start()
    try:
        with client(server) as api:
            created = api.post("/query/batch", json=BATCH)
            assert created.status_code == 201, created.text
        body = wait_until(lambda: (b := health(server))["queued"] > 0 and b)
        response = httpx.get(server.url + "/healthz")
    finally:
        server.stop()
    assert response.status_code == 200  # the API node itself is fine
    assert body["status"] == "degraded"
    assert body["workers"] == {"alive": 0, "last_seen_seconds": None}
    assert body["queued"] == 3


def test_an_idle_deployment_with_no_worker_is_ok(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", workers=0).start()
    try:
        body = health(server)
        gauge = workers_gauge(server)
    finally:
        server.stop()
    assert body["status"] == "ok" and body["queued"] == 0
    assert body["workers"]["alive"] == 0
    assert gauge == 0


def test_a_running_worker_is_counted_alive_by_healthz_and_metrics(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", workers=0).start()
    try:
        server.start_worker(concurrency=2)
        # Its two processes join one after the other.
        body = wait_until(lambda: (b := health(server))["workers"]["alive"] >= 2 and b, 60)
        gauge = workers_gauge(server)
    finally:
        server.stop()
    assert body["status"] == "ok"
    assert body["workers"]["alive"] == 2  # its two processes
    assert 0 <= body["workers"]["last_seen_seconds"] < 60
    assert gauge == 2


def test_a_worker_logs_that_it_joined_and_left_as_json_lines(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", {"QB_LOG_FORMAT": "json"}, workers=0).start()
    try:
        server.start_worker(concurrency=1)
        wait_until(lambda: health(server)["workers"]["alive"] >= 1, 60)
    finally:
        server.stop()
    log = (server.data_dir / "workers.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    names = [line.get("event") for line in lines]
    assert "worker_joined" in names and "worker_left" in names, log
    (joined,) = [line for line in lines if line.get("event") == "worker_joined"]
    assert joined["processes"] == 1 and joined["worker"]
    assert "postgres@" not in joined["store"]  # the store URL, without its credentials


def test_a_batch_run_by_a_worker_is_logged_as_finished_by_that_worker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", {"QB_LOG_FORMAT": "json"}, workers=1).start()
    try:
        with client(server) as api:
            batch_id = api.post("/query/batch", json=BATCH).json()["data"]["batch_id"]
            wait_until(
                lambda: (
                    api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED"
                ),
                60,
            )
        log_path = server.data_dir / "workers.log"
        wait_until(lambda: '"batch_finished"' in log_path.read_text(), 10)
    finally:
        server.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    (finished,) = [line for line in lines if line.get("event") == "batch_finished"]
    assert finished["batch_id"] == batch_id
    assert (finished["success"], finished["failure"], finished["queries"]) == (3, 0, 3)
    started = [json.loads(line) for line in server.log().splitlines() if line[:1] == "{"]
    assert any(e.get("event") == "batch_started" and e["batch_id"] == batch_id for e in started)


def test_an_api_node_logs_that_it_became_the_scheduling_leader(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "node", {"QB_LOG_FORMAT": "json"}, workers=0).start()
    try:
        wait_until(lambda: '"leader_changed"' in server.log(), 10)
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line[:1] == "{"]
    (changed,) = [line for line in lines if line.get("event") == "leader_changed"]
    assert changed["leader"] is True and changed["node"]
