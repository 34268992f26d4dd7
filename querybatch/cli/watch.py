"""Following a running batch: a live display of its counts, rate and ETA, that can be left.

The batch runs on the server whatever the terminal does, so leaving the display with Ctrl-C
only stops watching: :func:`follow` raises :class:`Left`, and the caller says how to come
back (``querybatch batch watch ID``). The display is transient: it is drawn on standard
error while the batch runs and removed when following ends, so a summary printed after it
appears once.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import orjson
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from querybatch.cli.common import errors
from querybatch.cli.http import ApiClient, Polled

POLL_SECONDS = 0.5  # how often the view is redrawn, and the batch polled without a hint
RATE_WINDOW_SECONDS = 30.0  # the rate is measured over this recent window, not since start
STALL_SECONDS = 10.0  # queued work nobody has taken for this long is worth a warning
HEALTH_EVERY_SECONDS = 5.0  # /healthz is asked at most this often, and only while stalled
LINE_EVERY_SECONDS = 10.0  # progress lines in a log (not a terminal) come at most this often
STATES = ("queued", "running", "success", "failure", "stopped")
ENDED = ("success", "failure", "stopped")


class Left(Exception):
    """The user left the display (Ctrl-C); the batch goes on on the server."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id


def counts_of(batch: dict[str, Any]) -> dict[str, int]:
    """The batch's counts by status; ``queued`` is derived when the server leaves it out."""
    progress = batch.get("progress") or {}
    counts = {state: int(progress.get(state) or 0) for state in STATES}
    if "queued" not in progress:
        others = sum(counts[state] for state in STATES if state != "queued")
        counts["queued"] = max(int(batch.get("query_amount") or 0) - others, 0)
    return counts


def leave_message(batch_id: str) -> str:
    """What Ctrl-C prints: the batch goes on, and how to follow it again."""
    return (
        f"left batch {batch_id}; it continues on the server. "
        f"Follow it again: querybatch batch watch {batch_id}"
    )


@dataclass
class Rate:
    """Sub-queries ended per second over the last :data:`RATE_WINDOW_SECONDS`."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> None:
        """Record that ``done`` sub-queries had ended at ``now``."""
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_SECONDS:
            self.samples.popleft()

    def per_second(self) -> float | None:
        """The recent rate, or None before a second of samples."""
        (first, before), (last, after) = self.samples[0], self.samples[-1]
        if last - first < 1.0:
            return None
        return (after - before) / (last - first)


@dataclass
class Stall:
    """How long queued work has waited with nothing running and nothing ending."""

    since: float | None = None
    last: tuple[int, ...] = ()

    def seconds(self, now: float, counts: dict[str, int]) -> float:
        """Seconds the batch has been stalled (0 while it moves or has nothing queued)."""
        marker = tuple(counts[state] for state in STATES)
        if counts["queued"] == 0 or counts["running"] > 0 or marker != self.last:
            self.since, self.last = now, marker
            return 0.0
        return 0.0 if self.since is None else now - self.since


@dataclass
class Workers:
    """How many workers ``/healthz`` says are alive (None: it does not say), asked rarely."""

    api: ApiClient
    asked: float = float("-inf")
    alive: int | None = None

    def check(self, now: float) -> int | None:
        """The last answer, refreshed when older than :data:`HEALTH_EVERY_SECONDS`."""
        if now - self.asked >= HEALTH_EVERY_SECONDS:
            self.asked = now
            self.alive = self._ask()
        return self.alive

    def _ask(self) -> int | None:
        try:
            # /healthz answers 503 when degraded; its body still says why.
            body = orjson.loads(self.api.http.get("/healthz", timeout=5).content)
            alive = body["workers"]["alive"]
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, TypeError):
            return None
        return alive if isinstance(alive, int) else None


def _scheduled_later(batch: dict[str, Any]) -> bool:
    """Whether the batch waits for its schedule_time (then queued work is not stalled)."""
    try:
        start = datetime.fromisoformat(batch["schedule_time"])
    except (KeyError, TypeError, ValueError):
        return False
    return start > datetime.now(UTC)


def _running_for(batch: dict[str, Any]) -> float | None:
    """Seconds the batch has run (None before it starts), by the server's start and end."""
    try:
        start = datetime.fromisoformat(batch["start_time"])
        end = datetime.fromisoformat(batch["end_time"]) if batch.get("end_time") else None
    except (KeyError, TypeError, ValueError):
        return None
    return max(((end or datetime.now(UTC)) - start).total_seconds(), 0.0)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


@dataclass
class View:
    """What the live display shows of one poll."""

    batch: dict[str, Any]
    elapsed: float
    rate: float | None
    stalled: float
    workers: int | None

    def _numbers(self) -> tuple[int, int, dict[str, int]]:
        counts = counts_of(self.batch)
        return int(self.batch.get("query_amount") or 0), sum(counts[s] for s in ENDED), counts

    def _timing(self) -> str:
        total, done, _ = self._numbers()
        timing = f"elapsed {_clock(self.elapsed)}"
        if self.rate is not None:
            timing += f"  rate {self.rate:.1f}/s"
            if self.rate > 0 and total > done:
                timing += f"  ETA {_clock((total - done) / self.rate)}"
        return timing

    def _warning(self) -> str:
        if self.stalled < STALL_SECONDS:
            return ""
        warning = f"no worker has taken work for {int(self.stalled)} s"
        if self.workers == 0:
            warning += "; no worker is connected to the server"
        return warning

    def render(self, width: int) -> RenderableType:
        """The display: id and status, a bar, counts, rate and ETA, and any stall warning."""
        total, done, counts = self._numbers()
        head = Text.assemble(
            ("batch ", "bold"),
            (self.batch["batch_id"], "bold cyan"),
            "  ",
            self.batch["status_code"],
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=done, width=max(min(width, 80) - 30, 10)),
            Text(f"{done}/{total} done"),
        )
        states = Text("  ".join(f"{state} {counts[state]}" for state in STATES))
        lines: list[RenderableType] = [head, bar, states, Text(self._timing())]
        if self._warning():
            lines.append(Text(self._warning(), style="yellow"))
        lines.append(Text("Ctrl-C leaves this display; the batch goes on.", style="dim"))
        return Group(*lines)

    def line(self) -> str:
        """The same as one log line, for output that is not a terminal."""
        total, done, counts = self._numbers()
        states = " ".join(f"{state} {counts[state]}" for state in STATES)
        parts = [f"{self.batch['batch_id']} {self.batch['status_code']} {done}/{total} done"]
        parts += [states, self._timing().replace("  ", " "), self._warning()]
        return "; ".join(part for part in parts if part)


class Output:
    """Where following shows progress: a live view, log lines, or nothing (``--json``)."""

    def __init__(self, mode: Literal["live", "lines", "none"]) -> None:
        self.mode = mode
        self.live = Live(console=errors, transient=True, auto_refresh=False)
        self.logged_at = float("-inf")
        self.logged = ""

    def __enter__(self) -> Output:
        if self.mode == "live":
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode == "live":
            self.live.stop()  # transient: the view is erased, so nothing shows twice

    def show(self, view: View, now: float) -> None:
        """Redraw the live view, or log a line when it changed (at most every few seconds)."""
        if self.mode == "live":
            self.live.update(view.render(errors.width), refresh=True)
            return
        line = view.line()
        ended = view.batch["status_code"] == "STOPPED"
        due = now - self.logged_at >= LINE_EVERY_SECONDS or ended
        if self.mode == "lines" and due and line != self.logged:
            errors.print(line)
            self.logged_at, self.logged = now, line


def follow(
    api: ApiClient, batch: dict[str, Any], *, mode: Literal["live", "lines", "none"]
) -> dict[str, Any]:
    """Poll ``batch`` until it stops and return it, showing its progress as ``mode`` says.

    Raises :class:`Left` on Ctrl-C, after the live view is erased.
    """
    began = time.monotonic()
    rate, stall, workers = Rate(), Stall(), Workers(api)
    polled = Polled({"data": batch})
    next_poll = began + POLL_SECONDS
    try:
        with Output(mode) as output:
            while True:
                now = time.monotonic()
                if now >= next_poll:
                    # Between polls the view still moves (elapsed time, ETA); the server's
                    # Retry-After says how often asking is worth it.
                    polled = api.poll(f"/query/batch/{batch['batch_id']}", polled)
                    batch = polled.body["data"]
                    now = time.monotonic()
                    next_poll = now + polled.wait(POLL_SECONDS)
                counts = counts_of(batch)
                rate.add(now, sum(counts[state] for state in ENDED))
                stalled = 0.0 if _scheduled_later(batch) else stall.seconds(now, counts)
                alive = workers.check(now) if stalled >= STALL_SECONDS else None
                elapsed = _running_for(batch)
                elapsed = now - began if elapsed is None else elapsed
                output.show(View(batch, elapsed, rate.per_second(), stalled, alive), now)
                if batch["status_code"] == "STOPPED":
                    return batch
                time.sleep(min(POLL_SECONDS, max(next_poll - time.monotonic(), 0.0)))
    except KeyboardInterrupt:
        raise Left(batch["batch_id"]) from None
