"""Status codes and the transitions allowed between them.

The store checks every counted status change against ``QUERY_TRANSITIONS`` in the
transaction that makes it, so an impossible transition is undone before any client can
observe it.
"""

from __future__ import annotations

from enum import StrEnum


class QueryStatus(StrEnum):
    """Lifecycle of one query (seed supermetrics-query-status)."""

    SCHEDULED = "SCHEDULED"  # accepted, waiting for its turn
    QUEUED = "QUEUED"  # claimed by an executor, waiting for a slot
    RUNNING = "RUNNING"  # the data source is being asked
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    STOPPED = "STOPPED"  # cancelled or timed out

    @property
    def is_final(self) -> bool:
        """True once the query has stopped for good."""
        return self in FINAL_QUERY_STATUSES


FINAL_QUERY_STATUSES = frozenset({QueryStatus.SUCCESS, QueryStatus.FAILURE, QueryStatus.STOPPED})

# QUEUED/RUNNING -> SCHEDULED is the way back after a lost worker or a restart, and
# QUEUED/RUNNING -> FAILURE the end of one whose attempts are used up (a run may hang or kill
# the process before its start is recorded). A query answered from the cache is created in
# SUCCESS and never moves.
QUERY_TRANSITIONS: dict[QueryStatus, frozenset[QueryStatus]] = {
    QueryStatus.SCHEDULED: frozenset({QueryStatus.QUEUED, QueryStatus.STOPPED}),
    QueryStatus.QUEUED: frozenset(
        {QueryStatus.RUNNING, QueryStatus.SCHEDULED, QueryStatus.STOPPED, QueryStatus.FAILURE}
    ),
    QueryStatus.RUNNING: frozenset(
        {
            QueryStatus.SUCCESS,
            QueryStatus.FAILURE,
            QueryStatus.STOPPED,
            QueryStatus.SCHEDULED,
        }
    ),
    QueryStatus.SUCCESS: frozenset(),
    QueryStatus.FAILURE: frozenset(),
    QueryStatus.STOPPED: frozenset(),
}


def can_move(current: QueryStatus, target: QueryStatus) -> bool:
    """Whether a query in ``current`` may move to ``target``."""
    return target in QUERY_TRANSITIONS[current]


class BatchStatus(StrEnum):
    """Lifecycle of a query batch (seed supermetrics-get-batch)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


def progress_key(status: QueryStatus) -> str:
    """The batch progress counter a query in ``status`` counts towards.

    Clients see five counters (queued, running, success, failure, stopped) that always add
    up to the number of sub-queries; SCHEDULED and QUEUED both count as queued.
    """
    if status in (QueryStatus.SCHEDULED, QueryStatus.QUEUED):
        return "queued"
    return status.value.lower()
