"""``querybatch worker`` keeps its Celery workers running: whatever ends one (a broker restart
ends a busy one inside kombu), it is started again, and a stop signal stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from support import ServerProcess, client, wait_until


def celery_workers(worker: subprocess.Popen[bytes], processes: int) -> list[psutil.Process]:
    """The Celery worker processes that the ``querybatch worker`` process supervises (empty
    until it has started all ``processes`` of them)."""
    children = psutil.Process(worker.pid).children()
    return children if len(children) == processes else []


def test_a_celery_worker_that_ends_by_itself_is_started_again_and_work_goes_on(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "node", workers=1, worker_processes_each=2).start()
    try:
        [worker] = server.worker_processes
        processes = server.worker_processes_each
        first, *others = wait_until(lambda: celery_workers(worker, processes))
        log_path = tmp_path / "node" / "workers.log"
        wait_until(lambda: log_path.read_text().count("joined queue") == processes)
        first.kill()  # as when kombu gives up after a broker restart: gone without a stop
        [second] = wait_until(
            lambda: [
                child
                for child in celery_workers(worker, processes)
                if child.pid not in {first.pid, *(other.pid for other in others)}
            ],
            timeout=30,
        )
        assert all(other.is_running() for other in others)  # the others ran on meanwhile
        wait_until(lambda: log_path.read_text().count("joined queue") == processes + 1)
        assert worker.poll() is None
        log = log_path.read_text()
        assert "the Celery worker ended by itself (exit code -9" in log
        with client(server) as api:
            made = api.post(
                "/query/batch",
                json={
                    "queries": [
                        {
                            "ds_id": "DEMO_WEB",
                            "ds_accounts": ["web-0001"],
                            "fields": "date,sessions",
                            "start_date": "2026-01-01",
                            "end_date": "2026-01-06",
                        }
                    ],
                    "split_dates_policy": "day",
                },
            )
            batch_id = made.json()["data"]["batch_id"]
            done = wait_until(
                lambda: (
                    (b := api.get(f"/query/batch/{batch_id}").json()["data"])["status_code"]
                    == "STOPPED"
                    and b
                ),
                timeout=60,
            )
            assert done["progress"]["success"] == 6
        # A stop signal to the supervisor stops every Celery worker too, and nothing restarts.
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(30) == 0
        for child in (second, *others):
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        server.stop()
