"""How background upkeep (expiry, packing) leaves the store and the loop to the work."""

from __future__ import annotations

# Between two slices the writer is free for the work, for at least this long; while work
# runs, a background pass takes at most this share of the time (deleting a million expired
# sub-queries beside a batch, at 1,000 a slice and 0.05 s between slices, took 1.7 times its
# makespan).
PAUSE_SECONDS = 0.02
BUSY_SHARE = 0.03


def rest_after(spent: float, busy: bool, least: float = PAUSE_SECONDS) -> float:
    """How long to rest after a slice of background work that took ``spent`` seconds: while
    work runs (``busy``), long enough that the background takes at most ``BUSY_SHARE`` of
    the time; else ``least``."""
    if busy:
        return max(least, spent * (1 - BUSY_SHARE) / BUSY_SHARE)
    return least
