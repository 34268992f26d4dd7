"""What a server process logs, read from its output: lifecycle events as JSON lines or text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ADMIN_KEY, ServerProcess, client, wait_until

DEPLOYMENTS = ("embedded",)

BATCH = {
    "queries": [
        {
            "ds_id": "DEMO_WEB",
            "ds_accounts": ["web-0001", "zz-9999"],
            "fields": "date,sessions",
            "start_date": "2026-01-01",
            "end_date": "2026-01-02",
        }
    ],
    "split_accounts_policy": "all",
}


def run_batch(server: ServerProcess) -> str:
    """Create the batch (one sub-query per account, one of them unknown) and wait for its end;
    the key travels in the query string too, so that access lines carry it."""
    with client(server) as api:
        created = api.post("/query/batch", json=BATCH, params={"api_key": ADMIN_KEY})
        assert created.status_code in (200, 201), created.text
        batch_id: str = created.json()["data"]["batch_id"]
        wait_until(
            lambda: api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED"
        )
    return batch_id


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server logging JSON lines that ran one batch and was stopped."""
    server = ServerProcess(
        tmp_path_factory.mktemp("json-logs"), {"QB_LOG_FORMAT": "json"}, log_level="info"
    ).start()
    try:
        batch_id = run_batch(server)
        # The finished line is written right after the batch stops.
        wait_until(lambda: '"batch_finished"' in server.log(), timeout=10)
    finally:
        server.stop()
    return server, batch_id


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every log line of the server, parsed (the console banner on stdout aside)."""
    lines = [line for line in server.log().splitlines() if line.strip()]
    banner = [line for line in lines if line.startswith("querybatch ") and " on http://" in line]
    return [json.loads(line) for line in lines if line not in banner]


def events(server: ServerProcess, name: str, batch_id: str) -> list[dict[str, Any]]:
    return [
        e for e in json_lines(server) if e.get("event") == name and e.get("batch_id") == batch_id
    ]


def test_every_log_line_of_a_json_server_is_a_json_object_with_time_level_and_logger(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, _ = json_server
    lines = json_lines(server)
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line


def test_a_created_batch_is_logged_with_its_id_tenant_and_size(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, batch_id = json_server
    (created,) = events(server, "batch_created", batch_id)
    assert created["level"] == "INFO"
    assert created["queries"] == 2 and created["tenant"] == "default"
    assert batch_id in created["message"]


def test_a_started_batch_is_logged_once(json_server: tuple[ServerProcess, str]) -> None:
    server, batch_id = json_server
    assert len(events(server, "batch_started", batch_id)) == 1


def test_a_finished_batch_is_logged_with_its_counts_and_duration(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, batch_id = json_server
    (finished,) = events(server, "batch_finished", batch_id)
    assert (finished["success"], finished["failure"], finished["stopped"]) == (1, 1, 0)
    assert finished["queries"] == 2
    assert finished["duration_seconds"] >= 0


def test_a_failed_sub_query_is_logged_as_a_warning_with_its_reason(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, batch_id = json_server
    (failed,) = events(server, "subquery_failed", batch_id)
    assert failed["level"] == "WARNING"
    assert failed["code"] and "zz-9999" in failed["reason"]
    assert "\n" not in failed["message"]


def test_access_lines_are_json_with_the_request_and_its_status(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, _ = json_server
    access = [e for e in json_lines(server) if e["logger"] == "uvicorn.access"]
    posts = [e for e in access if e["method"] == "POST" and e["path"].startswith("/query/batch")]
    assert posts and posts[0]["status"] in (200, 201)


def test_no_api_key_appears_anywhere_in_the_log(json_server: tuple[ServerProcess, str]) -> None:
    server, _ = json_server
    text = server.log()
    assert "api_key=[REDACTED]" in text  # the key was in the access lines, redacted
    assert ADMIN_KEY not in text and ADMIN_KEY[12:] not in text


def test_the_server_logs_its_start_and_its_stop(
    json_server: tuple[ServerProcess, str],
) -> None:
    server, _ = json_server
    names = [e.get("event") for e in json_lines(server)]
    assert "server_started" in names and "server_stopped" in names


def test_a_text_server_logs_readable_lines(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"QB_LOG_FORMAT": "text"}, log_level="info").start()
    try:
        batch_id = run_batch(server)
        wait_until(lambda: f"batch {batch_id} finished" in server.log(), timeout=10)
    finally:
        server.stop()
    line = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO  batch " + batch_id + r" created: 2 sub-queries"
        r" \(tenant default\)$",
        re.MULTILINE,
    )
    assert line.search(server.log()), server.log()
    assert re.search(r"WARNING sub-query \d+ of batch " + batch_id + " failed", server.log())
    assert ADMIN_KEY not in server.log()


def test_a_shutdown_with_a_batch_running_logs_no_error(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", log_level="info").start()
    slow = {**BATCH, "queries": [{**BATCH["queries"][0], "settings": {"demo_latency_ms": 5000}}]}
    with client(server) as api:
        created = api.post("/query/batch", json=slow)
        batch_id = created.json()["data"]["batch_id"]
        wait_until(lambda: f"batch {batch_id} started" in server.log(), timeout=10)
    server.stop()
    assert " ERROR " not in server.log() and "Traceback" not in server.log(), server.log()


def test_a_cancelled_batch_is_logged_with_what_it_had_done(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"QB_LOG_FORMAT": "json"}, log_level="info").start()
    slow = {**BATCH, "queries": [{**BATCH["queries"][0], "settings": {"demo_latency_ms": 20000}}]}
    try:
        with client(server) as api:
            batch_id = api.post("/query/batch", json=slow).json()["data"]["batch_id"]
            wait_until(lambda: f"batch {batch_id} started" in server.log(), timeout=10)
            assert api.delete(f"/query/batch/{batch_id}").status_code == 200
            wait_until(lambda: '"batch_cancelled"' in server.log(), timeout=10)
    finally:
        server.stop()
    (cancelled,) = events(server, "batch_cancelled", batch_id)
    assert (cancelled["success"], cancelled["stopped"], cancelled["queries"]) == (0, 2, 2)
    assert not events(server, "batch_finished", batch_id)


def bulk_batch(api: httpx.Client, **body: Any) -> str:
    """A bulk batch of two operations, created from an uploaded file."""
    query: dict[str, Any] = BATCH["queries"][0]  # type: ignore[index]
    operation = {k: v for k, v in query.items() if k != "ds_accounts"}
    data = b"".join(
        json.dumps({**operation, "ds_accounts": account}).encode() + b"\n"
        for account in ("web-0001", "web-0002")
    )
    made = api.post("/cache").json()
    assert httpx.put(made["url"], content=data, timeout=60).status_code == 200
    created = api.post(
        "/batches", json={"handler": made["handler"], "operation": "get_data", **body}
    )
    assert created.status_code == 201, created.text
    batch: str = created.json()["batch"]
    return batch


def test_a_bulk_batch_logs_each_status_it_goes_through_to_completed(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"QB_LOG_FORMAT": "json"}, log_level="info").start()
    try:
        with client(server) as api:
            batch = bulk_batch(api)
            wait_until(lambda: api.get(f"/batches/{batch}").json()["status"] == "completed", 60)
            wait_until(lambda: '"completed"' in server.log(), 10)
    finally:
        server.stop()
    lines = [e for e in json_lines(server) if e.get("bulk_batch_id") == batch]
    assert lines[0]["event"] == "bulk_batch_created"
    moves = [(e["previous"], e["status"]) for e in lines if e["event"] == "bulk_batch_status"]
    assert moves[0] == ("new", "copying") and moves[-1] == ("writing_results", "completed")
    assert all(e["tenant"] == "default" for e in lines[1:])


def test_a_bulk_batch_whose_file_does_not_match_its_hash_is_logged_as_a_warning(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data", {"QB_LOG_FORMAT": "json"}, log_level="info").start()
    try:
        with client(server) as api:
            batch = bulk_batch(api, hash="0" * 64)
            wait_until(lambda: '"hash_mismatch"' in server.log(), 60)
    finally:
        server.stop()
    (failed,) = [e for e in json_lines(server) if e.get("status") == "hash_mismatch"]
    assert failed["level"] == "WARNING" and failed["bulk_batch_id"] == batch


def test_an_unknown_log_format_is_one_clear_line_at_startup(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "querybatch", "serve"],
        env={"QB_DATA_DIR": str(tmp_path), "QB_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: QB_LOG_FORMAT: Input should be 'text' or 'json'"
    ]


def test_healthz_of_an_embedded_server_counts_its_slots_as_alive_workers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"QB_WORKERS": "7"}).start()
    try:
        body = httpx.get(server.url + "/healthz").json()
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert body["status"] == "ok"
    assert body["workers"] == {"alive": 7, "last_seen_seconds": 0.0}
    assert body["queued"] == 0
    assert re.search(r"^querybatch_workers_alive 7\.0$", metrics, re.MULTILINE)
