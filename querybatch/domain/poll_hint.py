"""How long a client should wait before asking again about work that has not ended.

Answers about unfinished queries and batches carry this as ``Retry-After``. Work that just
started is worth watching closely; the longer it has run, the longer it is likely to run
on, so the hint grows with its age (a tenth of it), from one second up to ``MAX_SECONDS``.
Work scheduled for later is not worth asking about before it starts.
"""

from __future__ import annotations

MIN_SECONDS = 1
MAX_SECONDS = 10
SCHEDULED_MAX_SECONDS = 60


def retry_after(started: float | None, scheduled: float | None, now: float) -> int:
    """Whole seconds to wait before the next poll of work that started at ``started`` (None:
    not yet) and is scheduled for ``scheduled`` (None: as soon as possible)."""
    if started is None:
        if scheduled is not None and scheduled > now + MIN_SECONDS:
            return int(min(scheduled - now, SCHEDULED_MAX_SECONDS))
        return MIN_SECONDS
    return int(min(max((now - started) / 10, MIN_SECONDS), MAX_SECONDS))
