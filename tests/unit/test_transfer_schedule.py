"""The schedule of a transfer: next run times (hypothesis properties) and bounds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querybatch.domain.transfer_schedule import (
    InvalidSchedule,
    Schedule,
    data_dates,
    next_run,
)

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
)
schedules = st.one_of(
    st.builds(Schedule, st.just("hourly"), st.integers(0, 23), st.integers(1, 90)),
    st.builds(Schedule, st.just("daily"), st.integers(0, 23), st.integers(1, 90)),
    st.builds(
        Schedule, st.just("weekly"), st.integers(0, 23), st.integers(1, 90), st.integers(1, 7)
    ),
    st.builds(
        Schedule,
        st.just("monthly"),
        st.integers(0, 23),
        st.integers(1, 90),
        st.none(),
        st.integers(1, 31),
    ),
)
PERIOD = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
}


def due(schedule: Schedule, at: datetime) -> bool:
    """Whether ``at`` is a time the schedule runs, judged from the fields alone."""
    if (at.minute, at.second, at.microsecond) != (0, 0, 0):
        return False
    if schedule.run_interval == "hourly":
        return True
    if at.hour != schedule.run_hour:
        return False
    if schedule.run_interval == "weekly":
        return at.isoweekday() == schedule.run_weekday
    if schedule.run_interval == "monthly":
        assert schedule.run_day is not None
        last = ((at.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day
        return at.day == min(schedule.run_day, last)
    return True


@settings(max_examples=300, deadline=None)
@given(schedules, moments)
def test_the_next_run_is_due_soon_after_and_none_is_skipped(
    schedule: Schedule, after: datetime
) -> None:
    run = next_run(schedule, after)
    assert run > after and run.tzinfo is not None
    assert run - after <= PERIOD[schedule.run_interval]
    assert due(schedule, run)
    # No due time lies between: stepping hour by hour finds none before ``run``.
    step = after.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while step < run:
        assert not due(schedule, step)
        step += timedelta(hours=1)


@settings(max_examples=200, deadline=None)
@given(schedules, moments)
def test_runs_follow_one_another_and_do_not_depend_on_the_zone(
    schedule: Schedule, after: datetime
) -> None:
    run = next_run(schedule, after)
    assert next_run(schedule, run) > run
    assert next_run(schedule, run - timedelta(microseconds=1)) == run
    elsewhere = after.astimezone(timezone(timedelta(hours=-7, minutes=-30)))
    assert next_run(schedule, elsewhere) == run


@given(schedules, moments)
def test_a_run_loads_its_refresh_window_up_to_yesterday(schedule: Schedule, at: datetime) -> None:
    dates = data_dates(schedule, at)
    assert len(dates) == schedule.refresh_window
    assert dates[-1] == at.date() - timedelta(days=1)
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(dates))


def test_a_short_month_runs_on_its_last_day() -> None:
    monthly = Schedule("monthly", 5, 1, run_day=31)
    assert next_run(monthly, datetime(2026, 2, 1, tzinfo=UTC)) == datetime(
        2026, 2, 28, 5, tzinfo=UTC
    )
    assert next_run(monthly, datetime(2026, 2, 28, 5, tzinfo=UTC)) == datetime(
        2026, 3, 31, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"run_interval": "yearly"},
        {"run_hour": 24},
        {"run_hour": -1},
        {"refresh_window": 0},
        {"refresh_window": 91},
        {"run_interval": "weekly"},
        {"run_interval": "weekly", "run_weekday": 8},
        {"run_interval": "monthly"},
        {"run_interval": "monthly", "run_day": 32},
        {"run_interval": "daily", "run_day": 3},
        {"run_interval": "daily", "run_weekday": 3},
        {"run_hour": True},
    ],
)
def test_a_schedule_out_of_bounds_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidSchedule):
        Schedule(**fields)  # type: ignore[arg-type]


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run(Schedule(), datetime(2026, 1, 1))
