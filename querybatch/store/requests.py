"""Request ids of queries: every id handed out for a query names it while it lives."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select

from querybatch.store.database import Database
from querybatch.store.repository import point_reads, writes
from querybatch.store.tables import queries, query_requests

_SCHEDULE_ID_OF = (
    select(queries.c.schedule_id)
    .join(query_requests, query_requests.c.query_id == queries.c.id)
    .where(
        query_requests.c.account == bindparam("account"),
        query_requests.c.request_id == bindparam("request_id"),
    )
)


class RequestStore:
    """The repository of the request ids a query was answered under, beyond its first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @writes
    def add(self, account: str, request_id: str, query_id: int, now: float) -> bool:
        """Let ``request_id`` name the query ``query_id`` (rows go with the query);
        False when the id names a query already (the first one stays)."""
        with self.db.writing() as conn:
            known = conn.execute(
                _SCHEDULE_ID_OF, {"account": account, "request_id": request_id}
            ).first()
            if known is not None:
                return False
            conn.execute(
                insert(query_requests).values(
                    account=account, request_id=request_id, query_id=query_id, created_at=now
                )
            )
        return True

    @point_reads
    def schedule_id_of(self, account: str, request_id: str) -> str | None:
        """The schedule id of the tenant's query that ``request_id`` was handed out for."""
        with self.db.point_reading() as conn:
            found: str | None = conn.execute(
                _SCHEDULE_ID_OF, {"account": account, "request_id": request_id}
            ).scalar_one_or_none()
        return found
