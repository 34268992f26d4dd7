"""Split one query into sub-queries by account group and by date piece."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal, get_args

SplitAccountsPolicy = Literal["none", "all"]
SplitDatesPolicy = Literal["none", "day", "week", "month"]

_ACCOUNT_POLICIES: tuple[str, ...] = get_args(SplitAccountsPolicy)
_DATE_POLICIES: tuple[str, ...] = get_args(SplitDatesPolicy)
_DAY = timedelta(days=1)


def split_dates(start: date, end: date, policy: SplitDatesPolicy) -> list[tuple[date, date]]:
    """Cut ``start..end`` (inclusive) into chronological, contiguous pieces.

    ``day``: one piece per day; ``week``: ISO weeks (Monday..Sunday) clipped to the range;
    ``month``: calendar months clipped to the range; ``none``: the whole range.
    """
    _check_dates_policy(policy)
    _check_range(start, end)
    if policy == "none":
        return [(start, end)]
    pieces: list[tuple[date, date]] = []
    piece_start = start
    while True:
        piece_end = min(end, _period_end(piece_start, policy))
        pieces.append((piece_start, piece_end))
        if piece_end == end:
            return pieces
        piece_start = piece_end + _DAY


def split_accounts(accounts: Sequence[str], policy: SplitAccountsPolicy) -> list[tuple[str, ...]]:
    """Group accounts: ``all`` gives one group per account, ``none`` one group of all of them.

    Duplicates are dropped (first occurrence kept). ``none`` with no accounts gives one empty
    group, ``all`` with no accounts gives no groups.
    """
    _check_accounts_policy(policy)
    unique = tuple(dict.fromkeys(accounts))
    if policy == "none":
        return [unique]
    return [(account,) for account in unique]


def split_query(
    accounts: Sequence[str],
    start: date,
    end: date,
    accounts_policy: SplitAccountsPolicy,
    dates_policy: SplitDatesPolicy,
) -> list[tuple[tuple[str, ...], date, date]]:
    """Every (account group, piece start, piece end); account groups outer, dates inner."""
    groups = split_accounts(accounts, accounts_policy)
    pieces = split_dates(start, end, dates_policy)
    return [
        (group, piece_start, piece_end) for group in groups for piece_start, piece_end in pieces
    ]


def count_subqueries(
    n_accounts: int,
    start: date,
    end: date,
    accounts_policy: SplitAccountsPolicy,
    dates_policy: SplitDatesPolicy,
) -> int:
    """How many sub-queries ``split_query`` would give for ``n_accounts`` distinct accounts.

    Computed arithmetically, so limit checks cost nothing for long ranges.
    """
    _check_accounts_policy(accounts_policy)
    _check_dates_policy(dates_policy)
    _check_range(start, end)
    if n_accounts < 0:
        raise ValueError(f"n_accounts must not be negative, got {n_accounts}")
    groups = n_accounts if accounts_policy == "all" else 1
    return groups * _count_pieces(start, end, dates_policy)


def _count_pieces(start: date, end: date, policy: SplitDatesPolicy) -> int:
    if policy == "day":
        return (end - start).days + 1
    if policy == "week":
        return (_week_start_ordinal(end) - _week_start_ordinal(start)) // 7 + 1
    if policy == "month":
        return (end.year * 12 + end.month) - (start.year * 12 + start.month) + 1
    return 1


def _period_end(day: date, policy: SplitDatesPolicy) -> date:
    """The last day of the day/week/month holding ``day``, never past ``date.max``."""
    if policy == "week":
        sunday = _week_start_ordinal(day) + 6
        return date.fromordinal(min(sunday, date.max.toordinal()))
    if policy == "month":
        return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])
    return day


def _week_start_ordinal(day: date) -> int:
    return day.toordinal() - day.weekday()


def _check_range(start: date, end: date) -> None:
    if start > end:
        raise ValueError(f"start {start} is after end {end}")


def _check_dates_policy(policy: str) -> None:
    if policy not in _DATE_POLICIES:
        raise ValueError(
            f"unknown split_dates policy {policy!r}; expected one of {', '.join(_DATE_POLICIES)}"
        )


def _check_accounts_policy(policy: str) -> None:
    if policy not in _ACCOUNT_POLICIES:
        raise ValueError(
            f"unknown split_accounts policy {policy!r}; "
            f"expected one of {', '.join(_ACCOUNT_POLICIES)}"
        )
