"""Keeps Celery workers running: ``querybatch worker`` starts them as children and starts
each again whenever it ends without being asked to.

Celery and kombu have exits of their own that no setting prevents: a Redis restart while
tasks run ends a busy worker with "Unrecoverable error" (an AttributeError inside kombu's
``restore_unacked``), and with exit code 0. A worker must outlive its broker, whatever the
cause, so the command that operators start supervises the one that Celery may end. The
child shares the process group, so ``kill`` of the group takes both, and on Linux it is
also told to stop if the supervisor alone is killed.
"""

from __future__ import annotations

import ctypes
import json
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
    """Runs each of ``commands`` until a stop signal arrives, restarting each after its
    unasked exits."""

    def __init__(self, commands: Sequence[Sequence[str]], name: str = "Celery worker") -> None:
        self.commands = [list(command) for command in commands]
        self.name = name
        self.restarts = 0
        self._stopping = threading.Event()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def run(self) -> int:
        """Supervise until stopped; the worst exit code of the children's last runs."""
        for signum in FORWARDED:
            signal.signal(signum, self._forward)
        codes = [0] * len(self.commands)
        keepers = [
            threading.Thread(
                target=self._keep_running, args=(number, codes), name=f"qb-supervise-{number}"
            )
            for number in range(len(self.commands))
        ]
        for keeper in keepers:
            keeper.start()
        for keeper in keepers:
            while keeper.is_alive():  # joined in steps: signals are handled between them
                keeper.join(0.5)
        return max(codes, key=abs)

    def _keep_running(self, number: int, codes: list[int]) -> None:
        delay = FIRST_DELAY
        while True:
            began = time.monotonic()
            codes[number] = code = self._run_child(number)
            if self._stopping.is_set():
                # A child still starting up has no handler yet: the stop signal ends it.
                if -code in FORWARDED:
                    codes[number] = 0
                return
            ran = time.monotonic() - began
            delay = FIRST_DELAY if ran >= STEADY_SECONDS else delay
            with self._lock:
                self.restarts += 1
                restarts = self.restarts
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
                restarts=restarts,
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_DELAY)

    def _run_child(self, number: int) -> int:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        with self._lock:
            if self._stopping.is_set():
                return 0
            child = subprocess.Popen(self.commands[number], preexec_fn=preexec)
            self._children[number] = child
        return child.wait()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        """A stop signal: pass it to the children, and end once they have."""
        self._stopping.set()
        if signum == signal.SIGINT and _in_foreground():
            return  # Ctrl-C reached the whole group; a second SIGINT would make Celery cold-stop
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)


def _in_foreground() -> bool:
    """Whether this process group is the foreground one of the terminal on standard input."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: Sequence[str]) -> int:
    """``python -m querybatch.engine.executors.supervisor LOG_FORMAT LOG_LEVEL COMMANDS``:
    supervise the commands (a JSON list of argument lists) with nothing else imported.

    ``querybatch worker`` checks its settings, then becomes this program (``exec``, same
    process id), so that the process that only watches the workers does not keep the whole
    server in memory.
    """
    log_format, log_level, commands = argv
    logs.install(log_format, log_level)
    return Supervisor(json.loads(commands)).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
