"""When a poll answer tells its client to ask again."""

from __future__ import annotations

import pytest

from querybatch.domain.poll_hint import MAX_SECONDS, SCHEDULED_MAX_SECONDS, retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("started", "scheduled", "seconds"),
    [
        (None, None, 1),  # queued, to start at once
        (None, NOW - 5, 1),  # due already
        (None, NOW + 30.5, 30),  # scheduled for later: not before it starts
        (None, NOW + 3600, SCHEDULED_MAX_SECONDS),
        (NOW - 3, None, 1),  # just started
        (NOW - 45, None, 4),  # a tenth of its age
        (NOW - 86_400, None, MAX_SECONDS),
        (NOW + 5, None, 1),  # a clock a little ahead never gives less than a second
    ],
)
def test_the_hint_grows_with_the_age_of_the_work(
    started: float | None, scheduled: float | None, seconds: int
) -> None:
    assert retry_after(started, scheduled, NOW) == seconds
