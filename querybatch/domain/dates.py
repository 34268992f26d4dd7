"""Turn a query's ``start_date`` / ``end_date`` / ``date_range_type`` into two calendar dates.

Everything is relative to a ``today`` the caller passes in, so that resolution is pure and the
caller decides the time zone.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

MIN_YEAR = 1900
MAX_YEAR = 2200
MAX_RANGE_DAYS = 3660

NAMED_RANGES: tuple[tuple[str, str], ...] = (
    ("today", "Today only."),
    ("yesterday", "Yesterday only."),
    ("last_N_days", "The N days ending yesterday (N from 1 to 3660), e.g. last_7_days."),
    ("last_N_days_incl_today", "The N days ending today (N from 1 to 3660)."),
    ("this_week", "Monday of the current week to today."),
    ("last_week", "Monday to Sunday of the previous week."),
    ("last_N_weeks", "The N full Monday-Sunday weeks before this week (N from 1 to 522)."),
    ("this_month", "The first of the current month to today."),
    ("month_to_date", "Same as this_month."),
    ("last_month", "The whole previous calendar month."),
    ("last_N_months", "The N full calendar months before this month (N from 1 to 120)."),
    ("this_quarter", "The first day of the current calendar quarter to today."),
    ("last_quarter", "The whole previous calendar quarter."),
    ("this_year", "January 1st of the current year to today."),
    ("year_to_date", "Same as this_year."),
    ("last_year", "The whole previous calendar year."),
    ("custom", "Use start_date and end_date."),
)

_DAY = timedelta(days=1)
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RELATIVE = re.compile(
    r"(?:(?P<n>[0-9]+)\s*(?P<unit>day|week|month|year)s?\s*ago"
    r"|-\s*(?P<neg_n>[0-9]+)\s*(?P<neg_unit>day|week|month|year)s?)"
)
_LAST_N = re.compile(r"last_(?P<n>[0-9]+)_(?P<unit>days|weeks|months)(?P<incl>_incl_today)?")
# The largest N per unit whose range still fits in MAX_RANGE_DAYS.
_MAX_LAST_N = {"days": MAX_RANGE_DAYS, "weeks": MAX_RANGE_DAYS // 7, "months": 120}
# The largest "N units ago" that can still land inside MIN_YEAR..MAX_YEAR.
_MAX_AGO = {"day": 110_000, "week": 15_750, "month": 3_612, "year": 301}
_MAX_DIGITS = 9


class DateRangeError(ValueError):
    """A date parameter is missing, malformed or out of bounds; the message names it."""


# Times a client may filter by: wide enough for any real use, narrow enough
# that no UTC offset or epoch conversion of them can overflow.
EARLIEST_TIME_YEAR = 1970
LATEST_TIME_YEAR = 2999
LATEST_EPOCH = datetime(LATEST_TIME_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()


def within_years(value: datetime, first: int, last: int, name: str) -> datetime:
    """``value`` if its year is in ``first..last``; else a ValueError naming ``name``."""
    if not first <= value.year <= last:
        raise ValueError(f"{name} must be in the years {first} to {last}")
    return value


def epoch_seconds(value: datetime, name: str) -> float:
    """A client's time as epoch seconds (naive means UTC), bounded so it cannot overflow."""
    within_years(value, EARLIEST_TIME_YEAR, LATEST_TIME_YEAR, name)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def resolve_date_range(
    start_date: str | None,
    end_date: str | None,
    date_range_type: str | None,
    today: date,
) -> tuple[date, date]:
    """Resolve the three date parameters of a query to an inclusive ``(start, end)`` pair.

    A named ``date_range_type`` wins over ``start_date``/``end_date``; ``custom`` or an empty
    value means use those two. When ``end_date`` is empty, ``start_date`` may hold a range name.
    Raises DateRangeError naming the offending parameter.
    """
    _check_year(today, "today", today.isoformat())
    range_name = _clean(date_range_type)
    if range_name and range_name != "custom":
        start, end = _named_range(range_name, today, "date_range_type")
        _check_span(start, end, "date_range_type")
        return start, end
    start_text, end_text = _clean(start_date), _clean(end_date)
    if not start_text:
        raise DateRangeError(
            "start_date is missing: give start_date and end_date, or a named date_range_type"
        )
    if not end_text:
        if not _is_range_name(start_text):
            raise DateRangeError(
                f"end_date is missing and start_date {start_date!r} is not a named date range"
            )
        start, end = _named_range(start_text, today, "start_date")
        _check_span(start, end, "start_date")
        return start, end
    start = _parse_date(start_text, today, "start_date")
    end = _parse_date(end_text, today, "end_date")
    if start > end:
        raise DateRangeError(f"start_date {start} is after end_date {end}")
    _check_span(start, end, "start_date and end_date")
    return start, end


def _clean(value: str | None) -> str:
    return (value or "").strip().lower()


def _is_range_name(text: str) -> bool:
    return text in _FIXED_RANGES or _LAST_N.fullmatch(text) is not None


def _parse_date(text: str, today: date, param: str) -> date:
    """Parse one absolute or relative date value (already stripped and lower-cased)."""
    if text == "today":
        return today
    if text == "yesterday":
        return _checked(today - _DAY, param, text)
    iso = _ISO_DATE.fullmatch(text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
        try:
            parsed = date(year, month, day)
        except ValueError:
            raise DateRangeError(f"{param}: {text!r} is not a real calendar date") from None
        return _checked(parsed, param, text)
    relative = _RELATIVE.fullmatch(text)
    if relative:
        digits = relative.group("n") or relative.group("neg_n")
        unit = relative.group("unit") or relative.group("neg_unit")
        return _checked(_ago(today, digits, unit, param), param, text)
    raise DateRangeError(
        f"{param}: cannot parse {text!r}; expected YYYY-MM-DD, today, yesterday, "
        "'N days ago', 'NdaysAgo' or '-N days' (also weeks, months, years)"
    )


def _ago(today: date, digits: str, unit: str, param: str) -> date:
    limit = _MAX_AGO[unit]
    if len(digits) > _MAX_DIGITS or int(digits) > limit:
        raise DateRangeError(f"{param}: {digits} {unit}s ago is too far back; at most {limit}")
    n = int(digits)
    if unit == "day":
        return today - timedelta(days=n)
    if unit == "week":
        return today - timedelta(weeks=n)
    if unit == "month":
        return _add_months(today, -n)
    return _add_months(today, -12 * n)


def _add_months(day: date, months: int) -> date:
    """Shift by whole months, clamping the day to the target month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _checked(value: date, param: str, text: str) -> date:
    _check_year(value, param, text)
    return value


def _check_year(value: date, param: str, text: str) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise DateRangeError(
            f"{param}: {text!r} gives {value}, outside the supported years {MIN_YEAR}..{MAX_YEAR}"
        )


def _check_span(start: date, end: date, param: str) -> None:
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise DateRangeError(
            f"{param}: the range {start}..{end} covers {days} days; the maximum is {MAX_RANGE_DAYS}"
        )


def _named_range(name: str, today: date, param: str) -> tuple[date, date]:
    fixed = _FIXED_RANGES.get(name)
    if fixed is not None:
        start, end = fixed(today)
    else:
        start, end = _last_n_range(name, today, param)
    _check_year(start, param, name)
    _check_year(end, param, name)
    return start, end


def _last_n_range(name: str, today: date, param: str) -> tuple[date, date]:
    match = _LAST_N.fullmatch(name)
    if match is None or (match.group("incl") and match.group("unit") != "days"):
        names = ", ".join(known for known, _ in NAMED_RANGES)
        raise DateRangeError(f"{param}: unknown date range {name!r}; expected one of {names}")
    digits, unit = match.group("n"), match.group("unit")
    limit = _MAX_LAST_N[unit]
    if len(digits) > _MAX_DIGITS or not 1 <= int(digits) <= limit:
        raise DateRangeError(f"{param}: N in {name!r} must be between 1 and {limit}")
    n = int(digits)
    if unit == "days":
        if match.group("incl"):
            return today - timedelta(days=n - 1), today
        return today - timedelta(days=n), today - _DAY
    if unit == "weeks":
        return _last_weeks(today, n)
    return _last_months(today, n)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _last_weeks(today: date, n: int) -> tuple[date, date]:
    this_monday = _monday(today)
    return this_monday - timedelta(weeks=n), this_monday - _DAY


def _last_months(today: date, n: int) -> tuple[date, date]:
    first = today.replace(day=1)
    return _add_months(first, -n), first - _DAY


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _last_quarter(today: date) -> tuple[date, date]:
    this_start = _quarter_start(today)
    return _add_months(this_start, -3), this_start - _DAY


_FIXED_RANGES: dict[str, Callable[[date], tuple[date, date]]] = {
    "today": lambda t: (t, t),
    "yesterday": lambda t: (t - _DAY, t - _DAY),
    "this_week": lambda t: (_monday(t), t),
    "last_week": lambda t: _last_weeks(t, 1),
    "this_month": lambda t: (t.replace(day=1), t),
    "month_to_date": lambda t: (t.replace(day=1), t),
    "last_month": lambda t: _last_months(t, 1),
    "this_quarter": lambda t: (_quarter_start(t), t),
    "last_quarter": _last_quarter,
    "this_year": lambda t: (date(t.year, 1, 1), t),
    "year_to_date": lambda t: (date(t.year, 1, 1), t),
    "last_year": lambda t: (date(t.year - 1, 1, 1), date(t.year - 1, 12, 31)),
}
