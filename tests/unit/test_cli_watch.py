"""The batch watch's arithmetic and words: counts, rate, stalls, workers, failure reasons."""

from __future__ import annotations

import io
from typing import Any

import httpx
import orjson
from rich.console import Console

from querybatch.cli.batch_views import reasons
from querybatch.cli.http import ApiClient
from querybatch.cli.watch import STALL_SECONDS, Rate, Stall, View, Workers, counts_of


def counts(queued: int, running: int = 0, success: int = 0) -> dict[str, int]:
    return {"queued": queued, "running": running, "success": success, "failure": 0, "stopped": 0}


def batch(**progress: int) -> dict[str, Any]:
    return {
        "batch_id": "qrb_0123456789ab",
        "status_code": "RUNNING",
        "query_amount": 10,
        "progress": progress,
    }


def shown(view: View) -> str:
    console = Console(width=80, file=io.StringIO())
    console.print(view.render(80))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_queued_count_is_derived_when_the_server_leaves_it_out() -> None:
    assert counts_of(batch(running=2, success=3, failure=1, stopped=0))["queued"] == 4


def test_the_rate_is_measured_over_the_recent_window_only() -> None:
    rate = Rate()
    rate.add(0.0, 0)
    rate.add(100.0, 0)  # a long idle start
    rate.add(110.0, 20)
    rate.add(140.0, 80)
    assert rate.per_second() == 2.0


def test_queued_work_with_nothing_running_and_no_progress_counts_as_stalled() -> None:
    stall = Stall()
    assert stall.seconds(0.0, counts(5)) == 0.0
    assert stall.seconds(12.0, counts(5)) == 12.0


def test_a_sub_query_ending_resets_the_stall() -> None:
    stall = Stall()
    stall.seconds(0.0, counts(5))
    assert stall.seconds(12.0, counts(4, success=1)) == 0.0


def test_running_work_is_not_a_stall() -> None:
    stall = Stall()
    stall.seconds(0.0, counts(5, running=1))
    assert stall.seconds(30.0, counts(5, running=1)) == 0.0


def test_a_stall_is_shown_with_its_length_and_a_missing_worker_when_healthz_says_so() -> None:
    view = View(batch(queued=10), 30.0, 0.0, STALL_SECONDS + 2, workers=0)
    text = shown(view)
    assert "no worker has taken work for 12 s" in text
    assert "no worker is connected to the server" in text


def test_without_a_worker_count_only_the_stall_is_shown() -> None:
    text = shown(View(batch(queued=10), 30.0, 0.0, STALL_SECONDS, workers=None))
    assert "no worker has taken work for 10 s" in text
    assert "connected" not in text


def test_the_view_shows_rate_eta_and_the_whole_id() -> None:
    text = shown(View(batch(queued=4, running=2, success=4), 8.0, 2.0, 0.0, workers=None))
    assert "qrb_0123456789ab" in text and "rate 2.0/s" in text and "ETA 0:00:03" in text
    assert "no worker" not in text


def probe(body: dict[str, Any], status: int = 200) -> Workers:
    api = ApiClient("http://127.0.0.1:9")
    api.http = httpx.Client(
        base_url=api.url,
        transport=httpx.MockTransport(lambda _: httpx.Response(status, content=orjson.dumps(body))),
    )
    return Workers(api)


def test_a_degraded_healthz_with_no_worker_alive_reads_as_zero_workers() -> None:
    body = {"status": "degraded", "workers": {"alive": 0, "last_seen_seconds": None}}
    assert probe(body, 503).check(0.0) == 0


def test_a_healthz_without_workers_reads_as_unknown() -> None:
    assert probe({"status": "ok"}).check(0.0) is None


def test_account_errors_are_counted_by_reason_not_by_account_list() -> None:
    def failed(accounts: str, description: str) -> dict[str, Any]:
        error = {"code": "ACCOUNT_ERROR", "message": f"failed: {accounts}"}
        return {"status_code": "FAILURE", "error_info": error | {"description": description}}

    items = [
        failed("zz-1", "zz-1: account not found in data source DEMO_ADS"),
        failed("zz-2", "zz-2: account not found in data source DEMO_ADS"),
        {
            "status_code": "STOPPED",
            "error_info": {"code": "QUERY_STOPPED", "message": "Batch cancelled"},
        },
    ]
    assert reasons(items) == {
        ("ACCOUNT_ERROR", "account not found in data source DEMO_ADS"): 2,
        ("QUERY_STOPPED", "Batch cancelled"): 1,
    }


def test_outside_a_terminal_progress_is_one_log_line_with_the_same_counts_and_warning() -> None:
    line = View(batch(queued=10), 30.0, 0.0, STALL_SECONDS, workers=0).line()
    assert line.startswith("qrb_0123456789ab RUNNING 0/10 done; queued 10 running 0 success 0")
    assert line.endswith("no worker has taken work for 10 s; no worker is connected to the server")
