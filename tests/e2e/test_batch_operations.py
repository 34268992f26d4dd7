"""Batches under operational stress: timeouts, fairness, tenant limits, restarts, callbacks, CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from querybatch.engine.callbacks import SIGNATURE_HEADER, verify
from support import ADMIN_KEY, ServerProcess, client, run_cli, running_server, wait_until


def slow_query(latency_ms: int, **overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": ["ads-0001"],
        "fields": "date,clicks",
        "start_date": "2026-01-01",
        "end_date": "2026-01-20",
        "settings": {"demo_latency_ms": latency_ms},
        **overrides,
    }


def batch_of(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = api.get(f"/query/batch/{batch_id}").json()["data"]
    return data


def items_of(api: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/query/batch/{batch_id}/status", params={"limit": 1000}).json()
    items: list[dict[str, Any]] = page["data"]
    return items


def peak_overlap(items: list[dict[str, Any]]) -> int:
    events = sorted(
        [(i["query_start_time"], 1) for i in items] + [(i["query_end_time"], -1) for i in items],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def tenant_key(server: ServerProcess, account: str) -> str:
    made = run_cli(server, "keys", "create", "--name", account, "--account", account, "-q")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_a_batch_that_outlives_its_timeout_stops_and_keeps_its_results(data_dir: Path) -> None:
    # One timeout minute lasts 0.4 s here, so timeout_minutes=5 is two seconds.
    with running_server(data_dir, QB_TIMEOUT_MINUTE_SECONDS="0.4") as server, client(server) as api:
        # A first query warms the workers up (scale-out), so the batch's time is its own.
        warm = api.post("/query/data/json", json={**slow_query(0), "sync_timeout": 60})
        assert warm.json()["meta"]["status_code"] == "SUCCESS"
        body = {
            "queries": [slow_query(300)],
            "split_dates_policy": "day",
            "query_concurrency": 2,
            "timeout_minutes": 5,
        }
        batch_id = api.post("/query/batch", json=body).json()["data"]["batch_id"]
        done = wait_until(
            lambda: (b := batch_of(api, batch_id))["status_code"] == "STOPPED" and b, timeout=10
        )
        counts = done["progress"]
        assert done["cancel_time"] is None
        assert counts["success"] > 0 and counts["stopped"] > 0
        assert counts["queued"] == 0 and counts["running"] == 0
        stopped = [i for i in items_of(api, batch_id) if i["status_code"] == "STOPPED"]
        assert stopped[0]["error_info"]["message"] == "Timed out"


def test_a_small_batch_of_another_tenant_is_not_starved_by_a_huge_one(data_dir: Path) -> None:
    # Four slots: four in-process workers, or (scaled out) four handed out at once to a worker
    # process, which runs every chunk it holds at once.
    server = ServerProcess(data_dir, {"QB_WORKERS": "4", "QB_CELERY_MAX_IN_FLIGHT": "4"}).start()
    try:
        with client(server) as big:
            small_key = tenant_key(server, "small-tenant")
            huge = {"queries": [slow_query(200)] * 100, "query_concurrency": 20}
            huge_id = big.post("/query/batch", json=huge).json()["data"]["batch_id"]
            wait_until(lambda: batch_of(big, huge_id)["progress"]["running"] == 4)
            with client(server, small_key) as small:
                tiny = {
                    "queries": [slow_query(200, ds_accounts=["ads-0002"])] * 8,
                    "query_concurrency": 4,
                }
                small_id = small.post("/query/batch", json=tiny).json()["data"]["batch_id"]
                wait_until(
                    lambda: batch_of(small, small_id)["status_code"] == "STOPPED", timeout=30
                )
                assert batch_of(small, small_id)["progress"]["success"] == 8
            # The huge batch has had no more than its fair half of the four slots meanwhile.
            assert batch_of(big, huge_id)["progress"]["success"] < 40
            big.delete(f"/query/batch/{huge_id}")
    finally:
        server.stop()


def test_the_tenant_limit_holds_over_all_its_batches(data_dir: Path) -> None:
    with running_server(data_dir, QB_ACCOUNT_CONCURRENCY="3") as server, client(server) as api:
        ids = [
            api.post(
                "/query/batch",
                json={
                    "queries": [slow_query(80, ds_accounts=[f"ads-000{n}"])] * 12,
                    "query_concurrency": 5,
                },
            ).json()["data"]["batch_id"]
            for n in (1, 2)
        ]
        for batch_id in ids:
            wait_until(lambda b=batch_id: batch_of(api, b)["status_code"] == "STOPPED", timeout=30)
        items = [item for batch_id in ids for item in items_of(api, batch_id)]
        assert all(i["status_code"] == "SUCCESS" for i in items)
        assert peak_overlap(items) == 3


def test_a_batch_survives_a_crash_and_every_result_is_stored_once(data_dir: Path) -> None:
    body = {"queries": [slow_query(100)], "split_dates_policy": "day", "query_concurrency": 3}
    first = ServerProcess(data_dir).start()
    try:
        with client(first) as api:
            batch_id = api.post("/query/batch", json=body).json()["data"]["batch_id"]
            wait_until(lambda: batch_of(api, batch_id)["progress"]["success"] >= 5)
    finally:
        first.kill()
    second = ServerProcess(data_dir).start()
    try:
        with client(second) as api:
            wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED", timeout=30)
            done = batch_of(api, batch_id)
            assert done["progress"]["success"] == 20
            items = items_of(api, batch_id)
            days = sorted(i["split_info"]["start_date"] for i in items)
            assert days == [f"2026-01-{d:02}" for d in range(1, 21)]
            for item in items:
                rows = api.get(item["result_info"]["results_url"]).json()["data"]
                assert rows[1][0] == item["split_info"]["start_date"] and len(rows) == 2
    finally:
        second.stop()
    assert second.count("results") == 20 and second.count("result_chunks") == 20


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def callback_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Recorder.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", _Recorder.received
    httpd.shutdown()
    httpd.server_close()


def test_the_callback_url_gets_a_signed_post_when_the_batch_stops(
    data_dir: Path, callback_receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = callback_receiver
    secret = "callback-test-secret"
    # The receiver is on loopback, which callbacks may reach only when the operator allows it.
    allow = {"QB_CALLBACK_ALLOW": "127.0.0.1"}
    with running_server(data_dir, QB_SECRET=secret, **allow) as server, client(server) as api:
        body = {"queries": [slow_query(10)], "callback_url": url}
        batch_id = api.post("/query/batch", json=body).json()["data"]["batch_id"]
        wait_until(lambda: received, timeout=15)
    headers, payload = received[0]
    event = json.loads(payload)
    assert event["batch_id"] == batch_id and event["status_code"] == "STOPPED"
    assert event["progress"]["success"] == 1
    signature = headers[SIGNATURE_HEADER]
    assert verify(secret.encode(), signature, payload)
    assert not verify(b"another secret", signature, payload)
    assert not verify(secret.encode(), signature, payload + b" ")
    assert len(received) == 1


# The CLI is a client of the API (as in test_cli_batch_watch.py): the batch it submits runs
# in both deployments in the tests above.
@pytest.mark.deployments("embedded")
def test_the_cli_submits_a_batch_waits_for_it_and_downloads_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps([slow_query(20)]))
    env = {"QB_URL": server.url, "QB_API_KEY": ADMIN_KEY}
    submitted = run_cli(
        server,
        "batch",
        "submit",
        str(queries),
        "--wait",
        "--split-dates",
        "week",
        "--json",
        **env,
    )
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)
    assert batch["status_code"] == "STOPPED" and batch["progress"]["success"] == 4
    status = run_cli(server, "batch", "status", batch["batch_id"], "--queries", "--json", **env)
    assert len(json.loads(status.stdout)["queries"]) == 4
    output = tmp_path / "all.csv"
    downloaded = run_cli(
        server,
        "batch",
        "download",
        batch["batch_id"],
        "-o",
        str(output),
        "--format",
        "csv",
        **env,
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert len(output.read_text().splitlines()) == 1 + 20
    results = run_cli(server, "batch", "results", batch["batch_id"], "--query", "2", **env)
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [line["date"] for line in lines] == [f"2026-01-{d:02}" for d in range(5, 12)]
    cancelled = run_cli(server, "batch", "cancel", batch["batch_id"], "--json", **env)
    assert json.loads(cancelled.stdout)["status_code"] == "STOPPED"
    missing = run_cli(server, "batch", "status", "qrb_000000000000", **env)
    assert missing.returncode == 2 and "No query batch" in missing.stderr


def test_a_batch_of_a_hundred_thousand_sub_queries_is_accepted_and_polled(data_dir: Path) -> None:
    with running_server(data_dir) as server, client(server) as api:
        body = {
            "queries": [
                {
                    "ds_id": "DEMO_ADS",
                    "ds_accounts": [f"ads-{a:04}" for a in range(1, 21)],
                    "fields": "date,clicks",
                    "start_date": "2019-01-01",
                    "end_date": "2025-11-04",
                }
            ]
            * 2,
            "split_accounts_policy": "all",
            "split_dates_policy": "day",
            "query_concurrency": 50,
        }
        created = api.post("/query/batch", json=body, timeout=120)
        assert created.status_code == 201, created.text
        batch = created.json()["data"]
        assert batch["query_amount"] == 2 * 20 * 2500
        status = api.get(f"/query/batch/{batch['batch_id']}/status", params={"offset": 99_900})
        assert len(status.json()["data"]) == 100
        assert status.json()["data"][-1]["schedule_id"].endswith("_query_100000")
        wait_until(lambda: batch_of(api, batch["batch_id"])["progress"]["success"] > 100)
        response = api.delete(f"/query/batch/{batch['batch_id']}")
        assert response.status_code == 200, response.text
        cancelled = response.json()["data"]
        assert sum(cancelled["progress"].values()) == 100_000
