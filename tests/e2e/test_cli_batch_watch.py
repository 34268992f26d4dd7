"""``querybatch batch watch`` and friends through the real entry point, in an 80-column terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ADMIN_KEY, ServerProcess, client, run_cli, running_server, wait_until

DEPLOYMENTS = ("embedded",)  # a client of the API: the deployment behind it does not matter

QUERYBATCH = str(Path(sys.executable).parent / "querybatch")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LEAVE = "it continues on the server. Follow it again: querybatch batch watch"


def query(
    latency_ms: int = 0, accounts: tuple[str, ...] = ("ads-0001",), days: int = 8
) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": list(accounts),
        "fields": "date,clicks",
        "start_date": "2026-01-01",
        "end_date": f"2026-01-{days:02}",
        "settings": {"demo_latency_ms": latency_ms},
    }


def long_batch(api: httpx.Client) -> str:
    """A batch that runs for about 20 s: long enough to start the CLI and interrupt it."""
    return submit(api, query(latency_ms=1000, days=20), concurrency=1)


def in_parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run CLI calls side by side: each one spends seconds just starting up."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def submit(api: httpx.Client, *queries: dict[str, Any], concurrency: int = 4) -> str:
    body = {
        "queries": list(queries),
        "split_dates_policy": "day",
        "split_accounts_policy": "all",
        "query_concurrency": concurrency,
    }
    response = api.post("/query/batch", json=body)
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["data"]["batch_id"]
    return batch_id


def batch_of(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = api.get(f"/query/batch/{batch_id}").json()["data"]
    return data


def cli(server: ServerProcess, *args: str) -> Any:
    return run_cli(server, *args, QB_URL=server.url, QB_API_KEY=ADMIN_KEY, COLUMNS="80")


def in_terminal(
    server: ServerProcess, *args: str, interrupt_after: str | None = None
) -> tuple[int, str]:
    """Run ``querybatch ARGS`` in an 80x24 pseudo-terminal; press Ctrl-C once the screen
    shows ``interrupt_after``. The exit code and the bytes the terminal got, as text.
    """
    env = {
        **server.full_env,
        "QB_URL": server.url,
        "QB_API_KEY": ADMIN_KEY,
        "COLUMNS": "80",
        "LINES": "24",
        "TERM": "xterm-256color",
    }
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command, with Ctrl-C as a terminal gives it
        # (a suite started in the background inherits SIGINT ignored, and so would it)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(QUERYBATCH, [QUERYBATCH, *args], env)
    shown, pressed = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        chunk = b""
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            shown += chunk
        if interrupt_after and not pressed and interrupt_after.encode() in shown:
            os.write(fd, b"\x03")
            pressed = True
        if ready and not chunk:
            break
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def plain(raw: str) -> str:
    """What a terminal showed, without colours and cursor moves."""
    return ANSI.sub("", raw)


def test_watch_shows_the_whole_batch_id_and_counts_by_status_in_80_columns(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = long_batch(api)
    code, raw = in_terminal(server, "batch", "watch", batch_id, interrupt_after=" RUNNING")
    api.delete(f"/query/batch/{batch_id}")
    screen = plain(raw)
    assert code == 130, screen
    assert f"batch {batch_id}  RUNNING" in screen
    assert re.search(r"queued \d+  running \d+  success \d+  failure 0  stopped 0", screen), screen


def test_ctrl_c_leaves_the_watch_once_with_exit_130_and_the_batch_keeps_running(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = long_batch(api)
    code, raw = in_terminal(server, "batch", "watch", batch_id, interrupt_after=" RUNNING")
    left = batch_of(api, batch_id)["progress"]["success"]
    screen = plain(raw)
    assert code == 130
    assert screen.count(LEAVE) == 1, screen
    # The live display is erased (cursor up, erase line) before the message, not left twice.
    assert "\x1b[2K" in raw[raw.rindex("Ctrl-C leaves this display") : raw.index(LEAVE)]
    assert f"querybatch batch watch {batch_id}" in screen
    assert "Traceback" not in screen
    wait_until(lambda: batch_of(api, batch_id)["progress"]["success"] > left)
    api.delete(f"/query/batch/{batch_id}")


def test_submit_wait_left_with_ctrl_c_says_how_to_come_back(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps([query(latency_ms=1000, days=20)]))
    code, raw = in_terminal(
        server,
        "batch",
        "submit",
        str(queries),
        "--split-dates",
        "day",
        "--concurrency",
        "1",
        "--wait",
        interrupt_after=" RUNNING",
    )
    screen = plain(raw)
    batch_id = re.search(r"qrb_[0-9a-f]{12}", screen)
    assert batch_id, screen
    api.delete(f"/query/batch/{batch_id.group()}")
    assert code == 130
    assert screen.count(f"{LEAVE} {batch_id.group()}") == 1, screen


def test_watch_re_attached_follows_the_batch_to_its_end_and_exits_0(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = submit(api, query(latency_ms=700, days=12), concurrency=1)
    in_terminal(server, "batch", "watch", batch_id, interrupt_after=" RUNNING")
    code, raw = in_terminal(server, "batch", "watch", batch_id)
    screen = plain(raw)
    assert code == 0, screen
    assert batch_of(api, batch_id)["progress"]["success"] == 12
    assert re.search(rf"{batch_id}\s+STOPPED\s+12\s+0\s+0\s+12\s+0\s+0", screen), screen


def test_watch_exits_1_and_sums_up_failures_by_reason_when_an_account_fails(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = submit(api, query(accounts=("ads-0001", "zz-9999")))
    watched = cli(server, "batch", "watch", batch_id)
    assert watched.returncode == 1, watched.stderr
    summary = " ".join(watched.stdout.split())
    assert "8 ACCOUNT_ERROR account not found in data source DEMO_ADS" in summary
    assert f"querybatch batch status {batch_id} --failed" in summary


def test_status_failed_shows_each_failure_with_its_code_and_full_message(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = submit(api, query(accounts=("zz-9999",)))
    wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED")
    shown = cli(server, "batch", "status", batch_id, "--failed")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert text.count("zz-9999: account not found in data source DEMO_ADS") == 8
    assert f"{batch_id}_query_8 ACCOUNT_ERROR: Data source failed for account(s)" in text


def test_status_wait_follows_the_batch_and_exits_0_when_all_succeeded(
    server: ServerProcess, api: httpx.Client
) -> None:
    batch_id = submit(api, query(latency_ms=50))
    waited = cli(server, "batch", "status", batch_id, "--wait", "--json")
    assert waited.returncode == 0, waited.stderr
    batch = json.loads(waited.stdout)
    assert batch["status_code"] == "STOPPED" and batch["progress"]["success"] == 8


def test_batch_list_prints_one_table_with_whole_ids_in_80_columns(
    server: ServerProcess, api: httpx.Client
) -> None:
    ids = [submit(api, query()), submit(api, query())]
    listed = cli(server, "batch", "list", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("status") == 1, listed.stdout
    for batch_id in ids:
        assert re.search(rf"^{batch_id} ", listed.stdout, re.MULTILINE), listed.stdout
    assert "…" not in listed.stdout


def test_every_batch_command_answers_json_that_parses(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps([query()]))
    made = json.loads(cli(server, "batch", "submit", str(queries), "--json").stdout)
    batch_id = made["batch_id"]
    watched = json.loads(cli(server, "batch", "watch", batch_id, "--json").stdout)
    assert watched["status_code"] == "STOPPED"
    output = tmp_path / "rows.ndjson"
    status, listed, downloaded = in_parallel(
        lambda: cli(server, "batch", "status", batch_id, "--failed", "--json"),
        lambda: cli(server, "batch", "list", "--json"),
        lambda: cli(server, "batch", "download", batch_id, "-o", str(output), "--json"),
    )
    assert json.loads(status.stdout) == {"batch": watched, "queries": []}
    assert batch_id in {b["batch_id"] for b in json.loads(listed.stdout)}
    assert json.loads(downloaded.stdout)["bytes"] == output.stat().st_size > 0
    cancelled = json.loads(cli(server, "batch", "cancel", batch_id, "--json").stdout)
    assert cancelled["batch_id"] == batch_id


def test_results_are_keyed_by_field_id_like_the_download_and_by_label_on_request(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    batch_id = submit(api, query())
    wait_until(lambda: batch_of(api, batch_id)["status_code"] == "STOPPED")
    output = tmp_path / "rows.ndjson"
    _, by_id, every, labelled = in_parallel(
        lambda: cli(server, "batch", "download", batch_id, "-o", str(output)),
        lambda: cli(server, "batch", "results", batch_id, "--query", "2"),
        lambda: cli(server, "batch", "results", batch_id),
        lambda: cli(server, "batch", "results", batch_id, "--query", "2", "--keys", "labels"),
    )
    downloaded = [json.loads(line) for line in output.read_text().splitlines()]
    one = [row for row in downloaded if row["schedule_id"] == f"{batch_id}_query_2"]
    assert one and [json.loads(line) for line in by_id.stdout.splitlines()] == one
    assert [json.loads(line) for line in every.stdout.splitlines()] == downloaded
    rows = [json.loads(line) for line in labelled.stdout.splitlines()]
    labels = {"schedule_id": "schedule_id", "date": "Date", "clicks": "Clicks"}
    assert rows == [{labels[key]: value for key, value in row.items()} for row in one]


@pytest.mark.parametrize("command", ["watch", "status"])
def test_the_batch_id_argument_is_explained_and_flags_show_no_value(
    server: ServerProcess, command: str
) -> None:
    shown = cli(server, "batch", command, "--help")
    assert "The batch's id" in shown.stdout
    assert not re.search(r"--(json|wait|failed|queries)\s+<bool>", shown.stdout)


def test_watch_says_no_worker_has_taken_work_while_its_queued_work_waits(data_dir: Path) -> None:
    # One sub-query at a time for the tenant: a long one holds the slot, the watched batch's
    # work stays queued with nothing running, as when no worker is there to take it.
    with running_server(data_dir, QB_ACCOUNT_CONCURRENCY="1") as server, client(server) as api:
        holder = submit(api, query(latency_ms=60_000, days=1), concurrency=1)
        wait_until(lambda: batch_of(api, holder)["progress"]["running"] == 1)
        waiting = submit(api, query(days=1))
        code, raw = in_terminal(
            server, "batch", "watch", waiting, interrupt_after="no worker has taken work for"
        )
        api.delete(f"/query/batch/{holder}")
    assert code == 130
    assert re.search(r"no worker has taken work for 1\d s", plain(raw)), plain(raw)
