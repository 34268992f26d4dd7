"""A tenant's recent activity, as the console's overview shows it: sub-queries finished per
minute (by outcome) and failures grouped by error code and message."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from querybatch.domain.status import QueryStatus
from querybatch.errors import BadRequest
from querybatch.store.activity import FailureReason
from querybatch.store.store import Store

MAX_MINUTES = 1440
"""The longest window: a day."""

MAX_REASONS = 100
"""The most failure groups an answer lists (the most frequent ones)."""

__all__ = ["MAX_MINUTES", "MAX_REASONS", "Activity", "FailureReason", "Minute", "read_activity"]


@dataclass(frozen=True, slots=True)
class Minute:
    """The tenant's sub-queries that ended in one minute, by outcome."""

    start: int  # epoch seconds, a whole minute
    success: int
    failure: int
    stopped: int


@dataclass(frozen=True, slots=True)
class Activity:
    """Every minute of the window, oldest first (the last one is the current, partial
    minute), and the window's failures by reason, most frequent first."""

    minutes: list[Minute]
    failures: list[FailureReason]
    more_failures: bool  # more than MAX_REASONS groups: the rarest are left out


def window_minutes(minutes: int) -> int:
    """``minutes``, or BAD_REQUEST outside 1..MAX_MINUTES."""
    if not 1 <= minutes <= MAX_MINUTES:
        raise BadRequest(
            "Invalid parameter 'minutes'", f"minutes must be between 1 and {MAX_MINUTES}"
        )
    return minutes


async def read_activity(store: Store, account: str, minutes: int, now: float) -> Activity:
    """``account``'s activity over the last ``minutes`` whole minutes, the current one
    included."""
    first = int(now // 60) - window_minutes(minutes) + 1
    since = first * 60.0
    counts, reasons = await asyncio.gather(
        store.activity.finished_per_minute(account, since),
        store.activity.failure_reasons(account, since, MAX_REASONS + 1),
    )
    per_minute = {
        index: dict.fromkeys(("success", "failure", "stopped"), 0) for index in range(minutes)
    }
    outcome = {
        QueryStatus.SUCCESS.value: "success",
        QueryStatus.FAILURE.value: "failure",
        QueryStatus.STOPPED.value: "stopped",
    }
    for count in counts:
        index = count.minute - first
        if index in per_minute and count.status in outcome:
            per_minute[index][outcome[count.status]] += count.count
    return Activity(
        minutes=[Minute((first + index) * 60, **tally) for index, tally in per_minute.items()],
        failures=reasons[:MAX_REASONS],
        more_failures=len(reasons) > MAX_REASONS,
    )
