"""A tenant's recent activity: sub-queries finished per minute, and failures by reason.

Both reads look only at the sub-queries that ended in the window, through the partial index
of finished sub-queries by tenant and end time (migration 0011): their cost follows the
window's activity, not the size of the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, cast, func, literal_column, select

from querybatch.domain.status import QueryStatus
from querybatch.store.database import Database
from querybatch.store.repository import reads
from querybatch.store.tables import queries


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """How many of a tenant's sub-queries ended with ``status`` in one minute."""

    minute: int  # minutes since the epoch
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class FailureReason:
    """Failed sub-queries with one error code and message, and how many batches they hit."""

    code: str
    message: str
    count: int
    batches: int


class ActivityStore:
    """The repository of a tenant's activity over a recent window."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _minute(self) -> ColumnElement[int]:
        """The minute (since the epoch) a sub-query ended in; end times are after 1970, so
        truncating is flooring (PostgreSQL's cast rounds, hence its floor)."""
        if self.db.is_sqlite:
            return cast(queries.c.end_time / 60, Integer)
        return cast(func.floor(queries.c.end_time / 60), Integer)

    @reads
    def finished_per_minute(self, account: str, since: float) -> list[MinuteCount]:
        """The tenant's sub-queries that ended at or after ``since``, per minute and status."""
        minute = self._minute().label("minute")
        statement = (
            select(minute, queries.c.status, func.count().label("n"))
            .where(queries.c.account == account, queries.c.end_time >= since)
            .group_by(minute, queries.c.status)
            .order_by(minute)
        )
        with self.db.reading() as conn:
            rows = conn.execute(statement).all()
        return [MinuteCount(int(r.minute), str(r.status), int(r.n)) for r in rows]

    @reads
    def failure_reasons(self, account: str, since: float, limit: int) -> list[FailureReason]:
        """The tenant's sub-queries that failed at or after ``since``, grouped by error code
        and message, most frequent first (``limit`` groups at most)."""
        code = func.coalesce(queries.c.error_code, "").label("code")
        message = func.coalesce(queries.c.error_message, "").label("message")
        count = func.count().label("n")
        statement = (
            select(code, message, count, func.count(queries.c.batch_id.distinct()).label("b"))
            .where(
                queries.c.account == account,
                queries.c.end_time >= since,
                # A literal, as the index's columns have it: a bound value could be anything.
                queries.c.status == literal_column(f"'{QueryStatus.FAILURE.value}'"),
            )
            .group_by(code, message)
            .order_by(count.desc(), code, message)
            .limit(limit)
        )
        with self.db.reading() as conn:
            rows = conn.execute(statement).all()
        return [FailureReason(r.code, r.message, int(r.n), int(r.b)) for r in rows]
