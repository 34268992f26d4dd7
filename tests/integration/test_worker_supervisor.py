"""``querybatch worker`` keeps its Celery worker running: whatever ends it (a broker restart
ends a busy one inside kombu), it is started again, and a stop signal stops both."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from support import ServerProcess, client, wait_until


def celery_of(worker: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The Celery worker that the ``querybatch worker`` process supervises (None until it
    has started one)."""
    children = psutil.Process(worker.pid).children()
    return children[0] if len(children) == 1 else None


def test_a_celery_worker_that_ends_by_itself_is_started_again_and_work_goes_on(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "node", workers=1).start()
    try:
        [worker] = server.worker_processes
        first = wait_until(lambda: celery_of(worker))
        wait_until(lambda: "joined queue" in (tmp_path / "node" / "workers.log").read_text())
        first.kill()  # as when kombu gives up after a broker restart: gone without a stop
        second = wait_until(
            lambda: (child := celery_of(worker)) is not None and child.pid != first.pid and child,
            timeout=30,
        )
        assert worker.poll() is None
        log = (tmp_path / "node" / "workers.log").read_text()
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
        # A stop signal to the supervisor stops the Celery worker too, and nothing restarts.
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(30) == 0
        assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
    finally:
        server.stop()
