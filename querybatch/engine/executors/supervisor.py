"""Keeps a Celery worker running: ``querybatch worker`` starts it as a child and starts it
again whenever it ends without being asked to.

Celery and kombu have exits of their own that no setting prevents: a Redis restart while
tasks run ends a busy worker with "Unrecoverable error" (an AttributeError inside kombu's
``restore_unacked``), and with exit code 0. A worker must outlive its broker, whatever the
cause, so the command that operators start supervises the one that Celery may end. The
child shares the process group, so ``kill`` of the group takes both, and on Linux it is
also told to stop if the supervisor alone is killed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from querybatch import logs

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5  # seconds before the first restart; doubled after each quick exit
MAX_DELAY = 5.0
STEADY_SECONDS = 30.0  # a child that ran this long was healthy: the back-off starts over
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Ask Linux to send SIGTERM to this process when its parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Runs ``command`` until a stop signal arrives, restarting it after unasked exits."""

    def __init__(self, command: Sequence[str], name: str = "Celery worker") -> None:
        self.command = list(command)
        self.name = name
        self.restarts = 0
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Supervise until stopped; the exit code of the last child."""
        for signum in FORWARDED:
            signal.signal(signum, self._forward)
        delay = FIRST_DELAY
        while True:
            began = time.monotonic()
            code = self._run_child()
            if self._stopping.is_set():
                return code
            ran = time.monotonic() - began
            delay = FIRST_DELAY if ran >= STEADY_SECONDS else delay
            self.restarts += 1
            logs.event(
                log,
                "worker_restarted",
                "the {child} ended by itself (exit code {code}, after {ran:.1f} s); "
                "starting it again in {delay:.1f} s (restart {restarts})",
                level=logging.WARNING,
                child=self.name,
                code=code,
                ran=ran,
                delay=delay,
                restarts=self.restarts,
            )
            if self._stopping.wait(delay):
                return code
            delay = min(delay * 2, MAX_DELAY)

    def _run_child(self) -> int:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self._child = subprocess.Popen(self.command, preexec_fn=preexec)
        if self._stopping.is_set():  # a stop signal came while it was being started
            self._child.send_signal(signal.SIGTERM)
        return self._child.wait()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        """A stop signal: pass it to the child, and end once the child has."""
        self._stopping.set()
        child = self._child
        if child is None or child.poll() is not None:
            return
        if signum == signal.SIGINT and _in_foreground():
            return  # Ctrl-C reached the whole group; a second SIGINT would make Celery cold-stop
        child.send_signal(signum)


def _in_foreground() -> bool:
    """Whether this process group is the foreground one of the terminal on standard input."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
