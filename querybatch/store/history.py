"""A key's recent single queries, newest first (``/query/history``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from querybatch.store.database import Database
from querybatch.store.repository import reads
from querybatch.store.tables import batches, queries, results


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One query as a key's history lists it."""

    batch_id: str
    schedule_id: str
    request_id: str | None
    ds_id: str
    status: str
    created_at: float
    start_time: float | None
    end_time: float | None
    total_rows: int | None
    cache_used: bool
    error_code: str | None


class HistoryStore:
    """The repository of the queries a key ran through ``/query/data``."""

    def __init__(self, db: Database, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    @reads
    def page(
        self,
        account: str,
        key_id: str,
        *,
        ds_ids: Sequence[str] | None,
        after: tuple[float, str] | None,
        now: float,
        limit: int,
    ) -> list[HistoryEntry]:
        """Up to ``limit`` of the key's live single queries after ``after`` (created_at,
        batch id), newest first; only those of ``ds_ids`` when given."""
        created, ident = batches.c.created_at, batches.c.id
        conditions = [
            batches.c.account == account,
            batches.c.kind == "single",
            batches.c.key_id == key_id,
            or_(batches.c.end_time.is_(None), batches.c.end_time >= now - self.result_ttl),
        ]
        if ds_ids is not None:
            conditions.append(queries.c.ds_id.in_(sorted(set(ds_ids))))
        if after is not None:
            ts, last = after
            conditions.append(or_(created < ts, and_(created == ts, ident < last)))
        statement = (
            select(
                ident,
                created,
                queries.c.schedule_id,
                queries.c.request_id,
                queries.c.ds_id,
                queries.c.status,
                queries.c.start_time,
                queries.c.end_time,
                queries.c.cache_used,
                queries.c.error_code,
                results.c.total_rows,
            )
            .join(queries, queries.c.batch_id == ident)
            .outerjoin(results, results.c.id == queries.c.result_id)
            .where(*conditions)
            .order_by(created.desc(), ident.desc())
            .limit(limit)
        )
        with self.db.reading() as conn:
            rows = conn.execute(statement).mappings()
            return [
                HistoryEntry(
                    batch_id=row["id"],
                    schedule_id=row["schedule_id"],
                    request_id=row["request_id"],
                    ds_id=row["ds_id"],
                    status=row["status"],
                    created_at=row["created_at"],
                    start_time=row["start_time"],
                    end_time=row["end_time"],
                    total_rows=row["total_rows"],
                    cache_used=bool(row["cache_used"]),
                    error_code=row["error_code"],
                )
                for row in rows
            ]
