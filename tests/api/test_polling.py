"""Polling through a real server: when to ask again, conditional answers, and the same
answers and errors whichever way a poll is served."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from querybatch.cli.http import ApiClient
from support import ADMIN_KEY, ServerProcess, assert_error, wait_until


def slow_batch(api: httpx.Client, latency_ms: int = 5000) -> dict[str, Any]:
    body = {
        "query_concurrency": 1,
        "queries": [
            {
                "ds_id": "DEMO_ADS",
                "ds_accounts": ["ads-0001"],
                "fields": "date,impressions",
                "start_date": "2026-01-01",
                "end_date": "2026-01-03",
                "settings": {"demo_latency_ms": latency_ms},
            }
        ],
        "split_dates_policy": "day",
    }
    response = api.post("/query/batch", json=body)
    assert response.status_code == 201, response.text
    assert int(response.headers["retry-after"]) >= 1
    batch: dict[str, Any] = response.json()["data"]
    return batch


def quick_batch(api: httpx.Client) -> dict[str, Any]:
    batch = slow_batch(api, latency_ms=0)

    def stopped() -> dict[str, Any] | None:
        data: dict[str, Any] = api.get(f"/query/batch/{batch['batch_id']}").json()["data"]
        return data if data["status_code"] == "STOPPED" else None

    done: dict[str, Any] = wait_until(stopped)
    return done


def test_answers_about_unfinished_work_say_when_to_ask_again(api: httpx.Client) -> None:
    batch_id = slow_batch(api)["batch_id"]
    try:
        for path in (
            f"/query/batch/{batch_id}",
            f"/v2/query/batch/{batch_id}",
            f"/query/batch/{batch_id}/status?offset=1&limit=1",
            f"/enterprise/v2/query/status?schedule_id={batch_id}_query_3",
        ):
            response = api.get(path)
            assert response.status_code == 200, (path, response.text)
            assert 1 <= int(response.headers["retry-after"]) <= 60, path
            assert response.headers["etag"].startswith('"'), path
            assert response.headers["x-request-id"] == response.json()["meta"]["request_id"]
    finally:
        api.delete(f"/query/batch/{batch_id}")
    # The cancel is seen by the very next poll, and a stopped batch needs no more polls.
    stopped = api.get(f"/query/batch/{batch_id}")
    assert stopped.json()["data"]["status_code"] == "STOPPED"
    assert "retry-after" not in stopped.headers


def test_a_poll_of_what_the_client_holds_is_answered_304(api: httpx.Client) -> None:
    batch_id = quick_batch(api)["batch_id"]
    for path in (
        f"/query/batch/{batch_id}",
        f"/query/batch/{batch_id}/status",
        f"/query/status?schedule_id={batch_id}_query_1",
    ):
        first = api.get(path)
        again = api.get(path)
        # Each answer carries its own request id, and the same ETag while nothing changed.
        assert first.json()["meta"]["request_id"] != again.json()["meta"]["request_id"]
        assert first.json()["data"] == again.json()["data"]
        etag = first.headers["etag"]
        assert again.headers["etag"] == etag, path
        held = api.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
        assert held.status_code == 304, path
        assert held.content == b""
        assert held.headers["etag"] == etag
        assert held.headers["x-request-id"]
        other = api.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200
        assert other.json()["data"] == first.json()["data"]


def test_a_changed_page_gets_a_new_etag(api: httpx.Client) -> None:
    batch_id = quick_batch(api)["batch_id"]
    whole = api.get(f"/query/batch/{batch_id}/status")
    part = api.get(f"/query/batch/{batch_id}/status", params={"offset": 1, "limit": 1})
    assert part.headers["etag"] != whole.headers["etag"]
    assert part.json()["data"] == whole.json()["data"][1:2]
    assert part.json()["meta"]["paginate"] == {"offset": 1, "limit": 1, "total": 3}


def test_polls_fail_as_every_other_request_does(api: httpx.Client, server: ServerProcess) -> None:
    batch_id = quick_batch(api)["batch_id"]
    assert_error(api.get("/query/batch/qrb_000000000000"), 404, "NOT_FOUND")
    assert_error(api.get("/query/batch/qrb_000000000000/status"), 404, "NOT_FOUND")
    assert_error(api.get("/query/status?schedule_id=nope"), 404, "STATUS_NOT_FOUND")
    assert_error(api.get(f"/query/batch/{batch_id}/status?limit=0"), 400, "BAD_REQUEST")
    assert_error(api.get(f"/query/batch/{batch_id}/status?offset=-1"), 400, "BAD_REQUEST")
    assert_error(api.get("/query/status"), 400, "BAD_REQUEST")
    anonymous = httpx.get(f"{server.url}/query/batch/{batch_id}")
    assert_error(anonymous, 401, "UNAUTHORIZED")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    pretty = api.get(f"/query/batch/{batch_id}", params={"pretty": "true"})
    assert pretty.text.startswith('{\n  "meta"')
    assert pretty.json()["data"]["batch_id"] == batch_id


def test_the_cli_polls_conditionally_and_as_often_as_the_server_says(
    api: httpx.Client, server: ServerProcess
) -> None:
    running = slow_batch(api)["batch_id"]
    ended = quick_batch(api)["batch_id"]
    try:
        with ApiClient(server.url, ADMIN_KEY) as cli:
            first = cli.poll(f"/query/batch/{running}")
            assert first.etag and first.retry_after is not None
            assert first.wait(0.5) == first.retry_after  # the server's hint, not the default
            done = cli.poll(f"/query/batch/{ended}")
            assert done.retry_after is None and done.wait(0.5) == 0.5
            again = cli.poll(f"/query/batch/{ended}", done)
            assert again.body is done.body  # answered 304: the body held stands
    finally:
        api.delete(f"/query/batch/{running}")


def node_metric(api: httpx.Client, name: str) -> float:
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no {name} in /metrics")


def test_polls_are_held_to_their_share_of_the_loop_while_work_runs_and_only_then(
    tmp_path: Path,
) -> None:
    """At 1% of the loop, flat-out polls of a batch at work soon use up the bucket and are
    held; once the batch has stopped, the same polls are never held."""
    # 1%, not more: one client polling back to back on a busy machine may send no more than a
    # few hundred polls a second, and at a larger share it would never run the bucket dry.
    server = ServerProcess(tmp_path / "data", env={"QB_POLL_SHARE": "0.01"}).start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as api:
            batch_id = slow_batch(api, latency_ms=120_000)["batch_id"]
            path = f"/query/batch/{batch_id}"
            wait_until(lambda: api.get(path).json()["data"]["progress"]["running"] or None)
            polls_before = node_metric(api, "querybatch_node_polls_total")
            sent = 0
            while node_metric(api, "querybatch_node_polls_held_total") == 0:
                assert sent < 5000, "5,000 polls of a batch at work were never held"
                for _ in range(20):  # back to back: /metrics between them would pace them
                    assert api.get(path).status_code == 200
                sent += 20
            assert node_metric(api, "querybatch_node_poll_held_seconds_total") > 0
            assert node_metric(api, "querybatch_node_polls_total") >= polls_before + sent
            assert node_metric(api, "querybatch_node_poll_cpu_seconds_total") > 0

            assert api.delete(path).status_code == 200
            wait_until(lambda: api.get(path).json()["data"]["status_code"] == "STOPPED" or None)
            held = node_metric(api, "querybatch_node_polls_held_total")
            for _ in range(300):
                assert api.get(path).status_code == 200
            assert node_metric(api, "querybatch_node_polls_held_total") == held
    finally:
        server.stop()


def test_a_batch_s_end_is_seen_at_the_next_poll_however_long_its_state_is_kept(
    tmp_path: Path,
) -> None:
    """A batch's state is kept 5 s for its polls here; its end is not: the first poll after
    the batch stopped says STOPPED, for the batch and for its sub-queries, not when the kept
    answers expire. A batch that ends after they would have expired anyway shows nothing,
    so on a machine too busy to end one within 4 s another is run (three at most)."""
    server = ServerProcess(tmp_path / "data", env={"QB_POLL_FRESHNESS": "5"}).start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as api:
            for _ in range(3):
                batch_id = slow_batch(api, latency_ms=300)["batch_id"]  # three of 0.3 s
                batch_path = f"/query/batch/{batch_id}"
                last_path = f"/query/status?schedule_id={batch_id}_query_3"

                def stopped(path: str = batch_path) -> dict[str, Any] | None:
                    data: dict[str, Any] = api.get(path).json()["data"]
                    return data if data["status_code"] == "STOPPED" else None

                # Both states are read while the batch runs, and kept 5 s from now.
                kept_from = time.time()
                assert api.get(batch_path).json()["data"]["status_code"] != "STOPPED"
                assert api.get(last_path).json()["meta"]["status_code"] != "SUCCESS"
                batch = wait_until(stopped)
                seen = time.time()
                ended = datetime.fromisoformat(batch["end_time"]).timestamp()
                if ended - kept_from < 4:
                    break
            else:
                pytest.fail("no batch ended within 4 s of its first poll: nothing was shown")
            assert api.get(last_path).json()["meta"]["status_code"] == "SUCCESS"
        # Kept its 5 s, the first answer would have shown the batch running for more than a
        # second after its end.
        assert seen - ended < 1, seen - ended
    finally:
        server.stop()
