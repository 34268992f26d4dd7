from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.dates import NAMED_RANGES, DateRangeError, resolve_date_range

TODAY = date(2026, 3, 18)  # a Wednesday


def resolve_one(value: str, today: date = TODAY) -> date:
    start, _ = resolve_date_range(value, "today", None, today)
    return start


def named(name: str, today: date = TODAY) -> tuple[date, date]:
    return resolve_date_range(None, None, name, today)


# Single date values


def test_an_iso_date_is_taken_as_is() -> None:
    assert resolve_one("2026-01-05") == date(2026, 1, 5)


def test_today_is_the_given_today() -> None:
    assert resolve_one("today") == TODAY


def test_yesterday_is_the_day_before_today() -> None:
    assert resolve_one("yesterday") == date(2026, 3, 17)


@pytest.mark.parametrize("text", ["3 days ago", "3daysAgo", "-3 days", "3 DAYS AGO", "-3days"])
def test_every_relative_day_spelling_counts_back_from_today(text: str) -> None:
    assert resolve_one(text) == date(2026, 3, 15)


def test_a_single_day_ago_may_be_singular() -> None:
    assert resolve_one("1 day ago") == date(2026, 3, 17)


def test_zero_days_ago_is_today() -> None:
    assert resolve_one("0daysAgo") == TODAY


@pytest.mark.parametrize("text", ["2 weeks ago", "2weeksAgo", "-2 weeks"])
def test_weeks_ago_counts_back_whole_weeks(text: str) -> None:
    assert resolve_one(text) == date(2026, 3, 4)


@pytest.mark.parametrize("text", ["1 month ago", "1monthsAgo", "-1 months"])
def test_months_ago_keeps_the_day_of_month(text: str) -> None:
    assert resolve_one(text) == date(2026, 2, 18)


def test_months_ago_clamps_the_day_to_the_end_of_a_shorter_month() -> None:
    assert resolve_one("1 month ago", today=date(2026, 3, 31)) == date(2026, 2, 28)


def test_years_ago_clamps_february_29th_to_the_28th() -> None:
    assert resolve_one("1 year ago", today=date(2024, 2, 29)) == date(2023, 2, 28)


def test_values_are_case_insensitive_and_whitespace_is_ignored() -> None:
    assert resolve_one("  YESTERDAY \t") == date(2026, 3, 17)


def test_explicit_start_and_end_dates_come_back_in_order() -> None:
    assert resolve_date_range("2026-01-01", "2026-01-31", None, TODAY) == (
        date(2026, 1, 1),
        date(2026, 1, 31),
    )


def test_custom_range_type_uses_start_and_end_dates() -> None:
    assert resolve_date_range("2026-01-01", "today", "custom", TODAY) == (
        date(2026, 1, 1),
        TODAY,
    )


def test_an_empty_range_type_uses_start_and_end_dates() -> None:
    assert resolve_date_range("yesterday", "today", " ", TODAY) == (date(2026, 3, 17), TODAY)


# Named ranges


def test_named_today_is_a_single_day() -> None:
    assert named("today") == (TODAY, TODAY)


def test_named_yesterday_is_a_single_day() -> None:
    assert named("yesterday") == (date(2026, 3, 17), date(2026, 3, 17))


def test_last_n_days_ends_yesterday() -> None:
    assert named("last_7_days") == (date(2026, 3, 11), date(2026, 3, 17))


def test_last_n_days_incl_today_ends_today() -> None:
    assert named("last_7_days_incl_today") == (date(2026, 3, 12), TODAY)


def test_this_week_runs_from_monday_to_today() -> None:
    assert named("this_week") == (date(2026, 3, 16), TODAY)


def test_this_week_on_a_monday_is_just_today() -> None:
    monday = date(2026, 3, 16)
    assert named("this_week", today=monday) == (monday, monday)


def test_last_week_is_the_previous_monday_to_sunday() -> None:
    assert named("last_week") == (date(2026, 3, 9), date(2026, 3, 15))


def test_last_n_weeks_are_full_weeks_before_this_week() -> None:
    assert named("last_2_weeks") == (date(2026, 3, 2), date(2026, 3, 15))


def test_this_month_runs_from_the_first_to_today() -> None:
    assert named("this_month") == (date(2026, 3, 1), TODAY)


def test_month_to_date_is_the_same_as_this_month() -> None:
    assert named("month_to_date") == named("this_month")


def test_last_month_spans_the_whole_previous_calendar_month() -> None:
    assert named("last_month") == (date(2026, 2, 1), date(2026, 2, 28))


def test_last_month_in_january_is_the_previous_december() -> None:
    assert named("last_month", today=date(2026, 1, 10)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_last_n_months_are_full_months_before_this_month() -> None:
    assert named("last_3_months") == (date(2025, 12, 1), date(2026, 2, 28))


def test_this_quarter_runs_from_the_quarter_start_to_today() -> None:
    assert named("this_quarter", today=date(2026, 5, 20)) == (date(2026, 4, 1), date(2026, 5, 20))


def test_last_quarter_is_the_whole_previous_quarter() -> None:
    assert named("last_quarter", today=date(2026, 5, 20)) == (date(2026, 1, 1), date(2026, 3, 31))


def test_last_quarter_in_the_first_quarter_is_the_previous_years_fourth() -> None:
    assert named("last_quarter") == (date(2025, 10, 1), date(2025, 12, 31))


def test_this_year_runs_from_january_first_to_today() -> None:
    assert named("this_year") == (date(2026, 1, 1), TODAY)


def test_year_to_date_is_the_same_as_this_year() -> None:
    assert named("year_to_date") == named("this_year")


def test_last_year_is_the_whole_previous_calendar_year() -> None:
    assert named("last_year") == (date(2025, 1, 1), date(2025, 12, 31))


def test_range_names_are_case_insensitive() -> None:
    assert named(" Last_7_Days ") == named("last_7_days")


def test_a_named_range_type_wins_over_start_and_end_dates() -> None:
    assert resolve_date_range("garbage", "2000-01-01", "yesterday", TODAY) == named("yesterday")


def test_start_date_may_name_a_range_when_end_date_is_missing() -> None:
    assert resolve_date_range("last_month", None, None, TODAY) == named("last_month")


def test_start_date_may_name_a_range_when_end_date_is_empty() -> None:
    assert resolve_date_range("this_week", "", "custom", TODAY) == named("this_week")


def test_named_ranges_list_every_fixed_name_with_a_description() -> None:
    names = {name for name, description in NAMED_RANGES if description}
    assert {"today", "last_N_days", "last_month", "year_to_date", "custom"} <= names


# Errors


def test_missing_start_date_without_a_range_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="start_date is missing"):
        resolve_date_range(None, "2026-01-01", None, TODAY)


def test_missing_both_dates_without_a_range_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="start_date is missing"):
        resolve_date_range("", None, "", TODAY)


def test_missing_end_date_with_a_plain_start_date_is_an_error() -> None:
    with pytest.raises(DateRangeError, match=r"end_date is missing.*'2026-01-01'"):
        resolve_date_range("2026-01-01", None, None, TODAY)


def test_an_unparseable_start_date_names_the_parameter_and_value() -> None:
    with pytest.raises(DateRangeError, match="start_date: cannot parse 'next tuesday'"):
        resolve_date_range("next tuesday", "today", None, TODAY)


def test_an_unparseable_end_date_names_the_parameter_and_value() -> None:
    with pytest.raises(DateRangeError, match="end_date: cannot parse '2026/01/01'"):
        resolve_date_range("today", "2026/01/01", None, TODAY)


def test_an_impossible_calendar_date_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="end_date: '2026-02-30' is not a real calendar date"):
        resolve_date_range("2026-02-01", "2026-02-30", None, TODAY)


def test_start_after_end_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="start_date 2026-02-02 is after end_date 2026-02-01"):
        resolve_date_range("2026-02-02", "2026-02-01", None, TODAY)


def test_a_range_longer_than_3660_days_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="covers 3661 days; the maximum is 3660"):
        resolve_date_range("2010-01-01", str(date(2010, 1, 1) + timedelta(days=3660)), None, TODAY)


def test_a_range_of_exactly_3660_days_is_allowed() -> None:
    end = date(2010, 1, 1) + timedelta(days=3659)
    assert resolve_date_range("2010-01-01", end.isoformat(), None, TODAY)[1] == end


def test_a_year_before_1900_is_an_error() -> None:
    with pytest.raises(DateRangeError, match=r"start_date: '1899-12-31'.*1900\.\.2200"):
        resolve_date_range("1899-12-31", "1900-01-02", None, TODAY)


def test_a_year_after_2200_is_an_error() -> None:
    with pytest.raises(DateRangeError, match=r"end_date: '2201-01-01'.*1900\.\.2200"):
        resolve_date_range("2200-12-31", "2201-01-01", None, TODAY)


def test_an_absurdly_large_days_ago_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="start_date: 99999999999 days ago is too far back"):
        resolve_date_range("99999999999daysAgo", "today", None, TODAY)


def test_an_unknown_range_type_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="date_range_type: unknown date range 'last_fort"):
        named("last_fortnight")


def test_zero_days_in_a_named_range_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="date_range_type: N in 'last_0_days' must be between"):
        named("last_0_days")


def test_an_absurdly_large_named_range_is_an_error() -> None:
    with pytest.raises(DateRangeError, match="N in 'last_999999999999_weeks' must be between 1"):
        named("last_999999999999_weeks")


def test_incl_today_only_applies_to_days() -> None:
    with pytest.raises(DateRangeError, match="unknown date range 'last_2_weeks_incl_today'"):
        named("last_2_weeks_incl_today")


def test_a_named_range_in_start_date_names_start_date_in_errors() -> None:
    with pytest.raises(DateRangeError, match="start_date: N in 'last_0_months'"):
        resolve_date_range("last_0_months", None, None, TODAY)


# Properties

NAMES = [
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "month_to_date",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "year_to_date",
    "last_year",
]
named_ranges = st.one_of(
    st.sampled_from(NAMES),
    st.integers(1, 3660).map(lambda n: f"last_{n}_days"),
    st.integers(1, 3660).map(lambda n: f"last_{n}_days_incl_today"),
    st.integers(1, 522).map(lambda n: f"last_{n}_weeks"),
    st.integers(1, 120).map(lambda n: f"last_{n}_months"),
)
# Away from the supported-year edges, so that every named range stays in bounds.
todays = st.dates(min_value=date(1911, 1, 1), max_value=date(2200, 12, 31))


@given(name=named_ranges, today=todays)
def test_named_ranges_never_start_after_they_end_or_pass_today(name: str, today: date) -> None:
    start, end = named(name, today)
    assert start <= end <= today


@given(name=named_ranges, today=todays)
def test_named_ranges_never_exceed_the_maximum_span(name: str, today: date) -> None:
    start, end = named(name, today)
    assert (end - start).days + 1 <= 3660


@given(n=st.integers(1, 3660), today=todays)
def test_last_n_days_always_covers_exactly_n_days(n: int, today: date) -> None:
    start, end = named(f"last_{n}_days", today)
    assert ((end - start).days + 1, end) == (n, today - timedelta(days=1))


@given(n=st.integers(1, 120), today=todays)
def test_last_n_months_run_from_a_first_to_a_month_end(n: int, today: date) -> None:
    start, end = named(f"last_{n}_months", today)
    assert (start.day, (end + timedelta(days=1)).day) == (1, 1)
