from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.splitting import (
    SplitAccountsPolicy,
    SplitDatesPolicy,
    count_subqueries,
    split_accounts,
    split_dates,
    split_query,
)

D = date

# split_dates


def test_no_date_split_gives_the_whole_range() -> None:
    assert split_dates(D(2026, 1, 1), D(2026, 3, 31), "none") == [(D(2026, 1, 1), D(2026, 3, 31))]


def test_a_day_split_gives_one_piece_per_day() -> None:
    assert split_dates(D(2026, 2, 27), D(2026, 3, 1), "day") == [
        (D(2026, 2, 27), D(2026, 2, 27)),
        (D(2026, 2, 28), D(2026, 2, 28)),
        (D(2026, 3, 1), D(2026, 3, 1)),
    ]


def test_a_week_split_follows_monday_to_sunday_weeks_clipped_to_the_range() -> None:
    # 2026-03-04 is a Wednesday, 2026-03-17 a Tuesday.
    assert split_dates(D(2026, 3, 4), D(2026, 3, 17), "week") == [
        (D(2026, 3, 4), D(2026, 3, 8)),
        (D(2026, 3, 9), D(2026, 3, 15)),
        (D(2026, 3, 16), D(2026, 3, 17)),
    ]


def test_a_month_split_follows_calendar_months_clipped_to_the_range() -> None:
    assert split_dates(D(2024, 1, 15), D(2024, 3, 10), "month") == [
        (D(2024, 1, 15), D(2024, 1, 31)),
        (D(2024, 2, 1), D(2024, 2, 29)),
        (D(2024, 3, 1), D(2024, 3, 10)),
    ]


def test_a_single_day_range_is_one_piece_for_every_policy() -> None:
    day = D(2026, 5, 5)
    policies: list[SplitDatesPolicy] = ["none", "day", "week", "month"]
    assert all(split_dates(day, day, policy) == [(day, day)] for policy in policies)


def test_a_week_split_ending_at_the_last_representable_date_does_not_overflow() -> None:
    assert split_dates(date.max - timedelta(days=1), date.max, "week") == [
        (date.max - timedelta(days=1), date.max)
    ]


def test_a_date_split_with_start_after_end_is_an_error() -> None:
    with pytest.raises(ValueError, match="start 2026-01-02 is after end 2026-01-01"):
        split_dates(D(2026, 1, 2), D(2026, 1, 1), "day")


def test_an_unknown_date_policy_is_an_error() -> None:
    bad: Any = "year"
    with pytest.raises(ValueError, match="unknown split_dates policy 'year'"):
        split_dates(D(2026, 1, 1), D(2026, 1, 2), bad)


# split_accounts


def test_an_all_split_gives_one_group_per_account_in_order() -> None:
    assert split_accounts(["b", "a", "c"], "all") == [("b",), ("a",), ("c",)]


def test_an_all_split_drops_duplicates_keeping_the_first() -> None:
    assert split_accounts(["b", "a", "b", "c", "a"], "all") == [("b",), ("a",), ("c",)]


def test_a_none_split_gives_one_group_of_all_accounts() -> None:
    assert split_accounts(["b", "a", "b"], "none") == [("b", "a")]


def test_a_none_split_of_no_accounts_gives_one_empty_group() -> None:
    assert split_accounts([], "none") == [()]


def test_an_all_split_of_no_accounts_gives_no_groups() -> None:
    assert split_accounts([], "all") == []


def test_an_unknown_account_policy_is_an_error() -> None:
    bad: Any = "each"
    with pytest.raises(ValueError, match="unknown split_accounts policy 'each'"):
        split_accounts(["a"], bad)


# split_query and count_subqueries


def test_split_query_puts_account_groups_outside_and_dates_inside() -> None:
    assert split_query(["x", "y"], D(2026, 1, 1), D(2026, 1, 2), "all", "day") == [
        (("x",), D(2026, 1, 1), D(2026, 1, 1)),
        (("x",), D(2026, 1, 2), D(2026, 1, 2)),
        (("y",), D(2026, 1, 1), D(2026, 1, 1)),
        (("y",), D(2026, 1, 2), D(2026, 1, 2)),
    ]


def test_count_subqueries_handles_ten_years_of_days_for_many_accounts() -> None:
    assert count_subqueries(1000, D(2016, 1, 1), D(2025, 12, 31), "all", "day") == 3_653_000


def test_count_subqueries_without_an_account_split_counts_one_group() -> None:
    assert count_subqueries(0, D(2026, 1, 1), D(2026, 2, 15), "none", "month") == 2


def test_count_subqueries_rejects_a_negative_account_count() -> None:
    with pytest.raises(ValueError, match="n_accounts must not be negative, got -1"):
        count_subqueries(-1, D(2026, 1, 1), D(2026, 1, 1), "all", "none")


def test_count_subqueries_rejects_start_after_end() -> None:
    with pytest.raises(ValueError, match="is after end"):
        count_subqueries(1, D(2026, 1, 2), D(2026, 1, 1), "none", "none")


# Properties

date_policies = st.sampled_from(["none", "day", "week", "month"])
account_policies = st.sampled_from(["none", "all"])
ranges = st.tuples(
    st.dates(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31)), st.integers(0, 800)
).map(lambda pair: (pair[0], pair[0] + timedelta(days=pair[1])))


@given(span=ranges, policy=date_policies)
def test_date_pieces_cover_the_range_exactly_without_overlap(
    span: tuple[date, date], policy: SplitDatesPolicy
) -> None:
    start, end = span
    pieces = split_dates(start, end, policy)
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(piece_start <= piece_end for piece_start, piece_end in pieces)
    assert all(
        next_start == previous_end + timedelta(days=1)
        for (_, previous_end), (next_start, _) in itertools.pairwise(pieces)
    )


@given(span=ranges, policy=st.sampled_from(["week", "month"]))
def test_week_and_month_pieces_never_straddle_a_period_boundary(
    span: tuple[date, date], policy: SplitDatesPolicy
) -> None:
    def period(day: date) -> tuple[int, int]:
        return day.isocalendar()[:2] if policy == "week" else (day.year, day.month)

    pieces = split_dates(*span, policy)
    assert all(period(piece_start) == period(piece_end) for piece_start, piece_end in pieces)


@given(
    accounts=st.lists(st.sampled_from("abcdefgh"), max_size=10),
    span=ranges,
    accounts_policy=account_policies,
    dates_policy=date_policies,
)
def test_count_subqueries_equals_the_number_of_split_queries(
    accounts: list[str],
    span: tuple[date, date],
    accounts_policy: SplitAccountsPolicy,
    dates_policy: SplitDatesPolicy,
) -> None:
    start, end = span
    expected = len(split_query(accounts, start, end, accounts_policy, dates_policy))
    assert count_subqueries(len(set(accounts)), start, end, accounts_policy, dates_policy) == (
        expected
    )
