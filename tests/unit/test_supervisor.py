"""The supervisor behind ``querybatch worker``: one keeper per child process, each child
started again alone when it ends by itself, and a stop signal that stops them all, counted
as a clean stop even for a child that had not set up its handlers yet."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil

from support import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]  # no handler: SIGTERM kills it


def supervise(children: int) -> subprocess.Popen[bytes]:
    """The supervisor program ``querybatch worker`` becomes, watching ``children`` sleepers."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "querybatch.engine.executors.supervisor"),
            *("text", "info", json.dumps([SLEEPER] * children)),
        ],
        stderr=subprocess.PIPE,
    )


def children_of(process: subprocess.Popen[bytes], count: int) -> list[psutil.Process]:
    children = psutil.Process(process.pid).children()
    return children if len(children) == count else []


def test_a_child_that_ends_is_started_again_alone_and_a_stop_ends_them_all_cleanly() -> None:
    supervisor = supervise(3)
    try:
        first, *others = wait_until(lambda: children_of(supervisor, 3), timeout=20)
        first.kill()
        [replacement] = wait_until(
            lambda: [
                child
                for child in children_of(supervisor, 3)
                if child.pid not in {first.pid, *(other.pid for other in others)}
            ],
            timeout=20,
        )
        assert all(other.is_running() for other in others)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0
        for child in (replacement, *others):
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        _, errors = supervisor.communicate()
        assert b"the Celery worker ended by itself (exit code -9" in errors
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
