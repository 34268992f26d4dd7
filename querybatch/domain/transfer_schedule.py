"""A transfer's schedule: when its next run is due, and which data dates it loads. Pure.

A schedule is one of the SDK's ``TransferSchedule`` entries: ``run_interval`` (``hourly``,
``daily``, ``weekly``, ``monthly``), ``run_hour`` (0-23, UTC; not used hourly),
``run_weekday`` (1 = Monday to 7 = Sunday, weekly only), ``run_day`` (1-31, monthly only;
a month without that day runs on its last day) and ``refresh_window`` (the days a run
loads, up to and including yesterday). Times are UTC and minute-free: a run is due at the
top of an hour.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

RunInterval = Literal["hourly", "daily", "weekly", "monthly"]
INTERVALS: tuple[RunInterval, ...] = ("hourly", "daily", "weekly", "monthly")
MAX_REFRESH_WINDOW = 90
"""The most days one run reloads (a longer history is a backfill)."""


class InvalidSchedule(ValueError):
    """A schedule that cannot run; ``field`` names the field, the message the rule."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = message.split(" ", 1)[0]


@dataclass(frozen=True, slots=True)
class Schedule:
    """One checked schedule (see the module's docstring for the fields)."""

    run_interval: RunInterval = "daily"
    run_hour: int = 0
    refresh_window: int = 1
    run_weekday: int | None = None
    run_day: int | None = None

    def __post_init__(self) -> None:
        if self.run_interval not in INTERVALS:
            raise InvalidSchedule("run_interval is one of " + ", ".join(INTERVALS))
        _bounded("run_hour", self.run_hour, 0, 23)
        _bounded("refresh_window", self.refresh_window, 1, MAX_REFRESH_WINDOW)
        if self.run_interval == "weekly":
            if self.run_weekday is None:
                raise InvalidSchedule("run_weekday is required for a weekly schedule")
            _bounded("run_weekday", self.run_weekday, 1, 7)
        elif self.run_weekday is not None:
            raise InvalidSchedule("run_weekday is only for a weekly schedule")
        if self.run_interval == "monthly":
            if self.run_day is None:
                raise InvalidSchedule("run_day is required for a monthly schedule")
            _bounded("run_day", self.run_day, 1, 31)
        elif self.run_day is not None:
            raise InvalidSchedule("run_day is only for a monthly schedule")

    def describe(self) -> str:
        """The list answer's ``schedule``: ``daily``, ``weekly``, ..."""
        return self.run_interval


def _bounded(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSchedule(f"{name} is a whole number from {low} to {high}")


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first time strictly after ``after`` (aware) the schedule is due, in UTC."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    now = after.astimezone(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    if schedule.run_interval == "hourly":
        return hour + timedelta(hours=1)
    day = datetime(now.year, now.month, now.day, schedule.run_hour, tzinfo=UTC)
    if schedule.run_interval == "daily":
        return day if day > now else day + timedelta(days=1)
    if schedule.run_interval == "weekly":
        assert schedule.run_weekday is not None
        ahead = (schedule.run_weekday - 1 - day.weekday()) % 7
        candidate = day + timedelta(days=ahead)
        return candidate if candidate > now else candidate + timedelta(days=7)
    assert schedule.run_day is not None
    year, month = now.year, now.month
    while True:
        candidate = _monthly(year, month, schedule.run_day, schedule.run_hour)
        if candidate > now:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _monthly(year: int, month: int, run_day: int, run_hour: int) -> datetime:
    last = calendar.monthrange(year, month)[1]
    return datetime(year, month, min(run_day, last), run_hour, tzinfo=UTC)


def data_dates(schedule: Schedule, run_at: datetime) -> list[date]:
    """The data dates a run at ``run_at`` loads: ``refresh_window`` days up to yesterday."""
    yesterday = run_at.astimezone(UTC).date() - timedelta(days=1)
    return [yesterday - timedelta(days=n) for n in range(schedule.refresh_window - 1, -1, -1)]


def next_due(schedules: Sequence[Schedule], after: datetime) -> datetime | None:
    """The first time strictly after ``after`` any of the schedules is due (None: none)."""
    return min((next_run(s, after) for s in schedules), default=None)


def due_dates(schedules: Sequence[Schedule], due_at: datetime) -> list[date]:
    """The data dates of the run due at ``due_at``, oldest first: those of every schedule
    due then; of them all when none is (a transfer's first run, due when it was made)."""
    just_before = due_at - timedelta(microseconds=1)
    due = [s for s in schedules if next_run(s, just_before) == due_at] or list(schedules)
    return sorted({d for s in due for d in data_dates(s, due_at)})
