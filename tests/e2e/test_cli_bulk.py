"""``querybatch bulk`` through the real entry point against a live server: submit, follow,
status line counts, list, cancel, delete, download, and Ctrl-C while following."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from support import ADMIN_KEY, ServerProcess, client, wait_until

# The CLI talks HTTP to the server: what it shows does not depend on the deployment.
DEPLOYMENTS = ("embedded",)

QUERYBATCH = Path(sys.executable).parent / "querybatch"


def op(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": f"ads-{1 + n % 20:04}",
        "fields": "date,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-03",
        **overrides,
    }


def slow(n: int) -> dict[str, Any]:
    """An operation that runs far longer than any test: it ends only when stopped."""
    return op(n, settings={"demo_latency_ms": 600_000})


def write(path: Path, operations: list[dict[str, Any]], extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in operations) + extra)
    return path


def env(server: ServerProcess, columns: int = 120) -> dict[str, str]:
    return {
        **server.full_env,
        "QB_URL": server.url,
        "QB_API_KEY": ADMIN_KEY,
        "COLUMNS": str(columns),
    }


def cli(server: ServerProcess, *args: str, columns: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QUERYBATCH), "bulk", *args],
        env=env(server, columns),
        capture_output=True,
        text=True,
        timeout=120,
    )


def submitted(server: ServerProcess, path: Path) -> str:
    """Create a batch of the file over HTTP (a CLI start costs seconds on a busy machine)."""
    with client(server) as api:
        made = api.post("/cache").json()
        put = httpx.put(made["url"], content=path.read_bytes(), timeout=60)
        assert put.status_code == 200, put.text
        body = {"handler": made["handler"], "operation": "get_data"}
        batch_id: str = api.post("/batches", json=body).json()["batch"]
    return batch_id


def read(server: ServerProcess, batch_id: str) -> dict[str, Any]:
    with client(server) as api:
        body: dict[str, Any] = api.get(f"/batches/{batch_id}").json()
    return body


def until(server: ServerProcess, batch_id: str, check: Any) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        batch = read(server, batch_id)
        return batch if check(batch) else None

    found: dict[str, Any] = wait_until(reached, timeout=60, interval=0.1)
    return found


def results(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def half_done(server: ServerProcess, tmp_path: Path) -> Iterator[str]:
    """A batch of two quick and two endless lines, with the quick two done; deleted after."""
    path = write(tmp_path / "half.jsonl", [op(0), op(1), slow(2), slow(3)])
    batch_id = submitted(server, path)
    until(server, batch_id, lambda b: (b.get("lines") or {}).get("done") == 2)
    yield batch_id
    with client(server) as api:
        api.delete(f"/batches/{batch_id}")


def test_submit_with_wait_writes_one_result_line_per_line_of_the_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = write(tmp_path / "ops.jsonl", [op(n) for n in range(12)])
    output = tmp_path / "results.jsonl"
    done = cli(server, "submit", str(path), "--wait", "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    lines = results(output)
    assert [line["line"] for line in lines] == list(range(1, 13))
    assert {line["status"] for line in lines} == {"SUCCESS"}
    for line in lines:
        assert line["result"]["fields"] == ["date", "impressions"]
        assert line["result"]["total_rows"] == len(line["result"]["rows"]) == 3


def test_submit_sends_the_files_sha256_and_prints_the_batch_as_json(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = write(tmp_path / "ops.jsonl", [op(n) for n in range(3)])
    made = cli(server, "submit", str(path), "--json")
    assert made.returncode == 0, made.stderr
    batch = json.loads(made.stdout)
    assert batch["hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert batch["status"] == "new" and "meta" not in batch
    assert read(server, batch["batch"])["hash"] == batch["hash"]


def test_a_file_with_a_bad_line_ends_validation_failed_with_exit_1_and_the_reason(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = write(tmp_path / "bad.jsonl", [op(0), op(1, start_date="someday"), op(2)])
    done = cli(server, "submit", str(path), "--wait")
    assert done.returncode == 1, done.stderr
    assert "validation_failed" in done.stderr
    assert "line 2: Invalid value for parameter 'start_date'" in done.stderr


def test_status_counts_the_lines_done_and_failed_of_a_finished_batch(
    server: ServerProcess, tmp_path: Path
) -> None:
    failing = {"demo_fail_accounts": ["ads-0005"]}
    operations = [op(n) for n in range(4)] + [op(4, settings=failing), op(4, settings=failing)]
    batch_id = submitted(server, write(tmp_path / "ops.jsonl", operations))
    until(server, batch_id, lambda b: b["status"] == "completed")
    shown = cli(server, "status", batch_id)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()}
    assert rows["status"] == ["completed"]
    assert (rows["lines"], rows["done"], rows["failed"]) == (["6"], ["6"], ["2"])


def test_status_counts_the_lines_done_while_the_batch_is_processing(
    server: ServerProcess, half_done: str
) -> None:
    shown = cli(server, "status", half_done, "--json")
    assert shown.returncode == 0, shown.stderr
    batch = json.loads(shown.stdout)
    assert batch["status"] == "processing"
    assert batch["lines"] == {"total": 4, "done": 2, "failed": 0}


def test_cancel_stops_the_unfinished_lines_and_keeps_the_finished_ones(
    server: ServerProcess, half_done: str, tmp_path: Path
) -> None:
    cancelled = cli(server, "cancel", half_done)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancel" in cancelled.stdout
    output = tmp_path / "results.jsonl"
    ended = cli(server, "status", half_done, "--wait", "-o", str(output))
    assert ended.returncode == 1
    assert "ended cancelled" in ended.stderr
    assert [(line["line"], line["status"]) for line in results(output)] == [
        (1, "SUCCESS"),
        (2, "SUCCESS"),
        (3, "STOPPED"),
        (4, "STOPPED"),
    ]


def test_delete_removes_the_batch(server: ServerProcess, tmp_path: Path) -> None:
    batch_id = submitted(server, write(tmp_path / "ops.jsonl", [op(0)]))
    deleted = cli(server, "delete", batch_id)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted {batch_id}" in deleted.stdout
    assert read(server, batch_id)["error"]["code"] == "NOT_FOUND"


def test_download_writes_a_finished_batchs_results_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    batch_id = submitted(server, write(tmp_path / "ops.jsonl", [op(n) for n in range(5)]))
    until(server, batch_id, lambda b: b["status"] == "completed")
    output = tmp_path / "results.jsonl"
    fetched = cli(server, "download", batch_id, "-o", str(output))
    assert fetched.returncode == 0, fetched.stderr
    assert [line["line"] for line in results(output)] == [1, 2, 3, 4, 5]
    assert not output.with_name(output.name + ".part").exists()


def test_list_at_80_columns_shows_every_full_id_in_one_table(
    server: ServerProcess, tmp_path: Path
) -> None:
    ids = [submitted(server, write(tmp_path / f"ops{n}.jsonl", [op(n)])) for n in range(3)]
    listed = cli(server, "list", columns=80)
    assert listed.returncode == 0, listed.stderr
    for batch_id in ids:
        assert batch_id in listed.stdout
    assert listed.stdout.count("┏") == 1  # one table, however many batches
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80


def test_list_json_keeps_only_the_statuses_asked_for(server: ServerProcess, tmp_path: Path) -> None:
    good = submitted(server, write(tmp_path / "good.jsonl", [op(0)]))
    bad = submitted(server, write(tmp_path / "bad.jsonl", [op(0)], extra=b"{oops\n"))
    until(server, good, lambda b: b["status"] == "completed")
    until(server, bad, lambda b: b["status"] == "validation_failed")
    listed = cli(server, "list", "--status", "validation_failed", "--json")
    assert listed.returncode == 0, listed.stderr
    batches = json.loads(listed.stdout)
    assert bad in {b["batch"] for b in batches}
    assert good not in {b["batch"] for b in batches}
    assert {b["status"] for b in batches} == {"validation_failed"}


def test_ctrl_c_while_following_exits_130_and_the_batch_carries_on(
    server: ServerProcess, tmp_path: Path
) -> None:
    batch_id = submitted(server, write(tmp_path / "ops.jsonl", [op(0), slow(1)]))
    # A terminal on standard error: the live progress is drawn there.
    master, slave = os.openpty()
    follow = subprocess.Popen(
        [str(QUERYBATCH), "bulk", "status", batch_id, "--wait"],
        env={**env(server), "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        # Ctrl-C as a terminal gives it, even in a suite started in the background (which
        # inherits SIGINT ignored, and would pass that on).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    try:
        screen = read_until(master, "processing")
        assert "lines done" in screen
        follow.send_signal(signal.SIGINT)
        assert follow.wait(30) == 130
        screen += read_until(master, "--wait")
        assert f"querybatch bulk status {batch_id} --wait" in " ".join(screen.split())
        assert read(server, batch_id)["status"] == "processing"
    finally:
        with contextlib.suppress(ProcessLookupError):
            follow.kill()
        follow.wait(30)
        os.close(master)
        with client(server) as api:
            api.delete(f"/batches/{batch_id}")


def read_until(fd: int, text: str, timeout: float = 60) -> str:
    """What a pseudo-terminal shows, read until ``text`` appears in it."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never shown; saw {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the other end closed: the process ended
                break
    return seen.decode(errors="replace")
