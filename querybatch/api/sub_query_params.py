"""The filter parameters of a batch's status page: ``status``, ``account`` and ``date``."""

from __future__ import annotations

from datetime import date

from querybatch.domain.status import QueryStatus
from querybatch.domain.sub_query_filter import (
    ACCOUNT_MAX_LENGTH,
    ACCOUNT_PATTERN,
    STATUSES_MAX,
    SubQueryFilter,
)
from querybatch.errors import InvalidFilter

FILTER_PARAMS = frozenset({"status", "account", "date"})
_STATUS_TEXT_MAX = 100  # a status parameter's text (one or several, comma-separated)


def sub_query_filter(statuses: list[str], account: str | None, day: str | None) -> SubQueryFilter:
    """The filter the parameters ask for; INVALID_FILTER naming the parameter when one is bad.

    ``status`` may be given several times, or as a comma-separated list.
    """
    return SubQueryFilter(_statuses(statuses), _account(account), _day(day))


def _statuses(values: list[str]) -> frozenset[QueryStatus]:
    names: list[str] = []
    for value in values[: STATUSES_MAX + 1]:
        if len(value) > _STATUS_TEXT_MAX:
            raise InvalidFilter("Invalid value for parameter 'status'", "Too long.")
        names.extend(part.strip().upper() for part in value.split(","))
    if len(values) > STATUSES_MAX or len(names) > STATUSES_MAX:
        raise InvalidFilter(
            "Invalid value for parameter 'status'", f"At most {STATUSES_MAX} statuses."
        )
    try:
        return frozenset(QueryStatus(name) for name in names)
    except ValueError as exc:
        known = ", ".join(status.value for status in QueryStatus)
        raise InvalidFilter(
            "Invalid value for parameter 'status'", f"A status is one of {known}."
        ) from exc


def _account(value: str | None) -> str | None:
    if value is None:
        return None
    if not ACCOUNT_PATTERN.fullmatch(value):
        raise InvalidFilter(
            "Invalid value for parameter 'account'",
            f"1 to {ACCOUNT_MAX_LENGTH} characters of letters, digits, spaces and _.:@+/-",
        )
    return value


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidFilter("Invalid value for parameter 'date'", "A date as YYYY-MM-DD.") from exc
