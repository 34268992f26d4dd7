"""Housekeeping of batches: expiry, callbacks, and the totals /metrics reports."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from querybatch.domain.status import BatchStatus
from querybatch.store.database import Database
from querybatch.store.jobs import batch_record
from querybatch.store.records import BatchRecord
from querybatch.store.repository import reads, writes
from querybatch.store.tables import batches, queries, result_chunks, results, source_stats


class UpkeepStore:
    """The repository of expiry, callbacks and cluster-wide totals."""

    def __init__(self, db: Database, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    @reads
    def source_totals(self) -> list[tuple[str, str, int, float]]:
        """(ds_id, status, sub-queries finished, seconds spent) over the whole cluster."""
        with self.db.reading() as conn:
            rows = conn.execute(select(source_stats).order_by(source_stats.c.ds_id))
            return [(r.ds_id, r.status, int(r.finished), float(r.run_seconds)) for r in rows]

    @reads
    def queue_totals(self) -> tuple[int, int, int]:
        """(sub-queries waiting, running, batches active) over every tenant."""
        with self.db.reading() as conn:
            row = conn.execute(
                select(
                    func.coalesce(func.sum(batches.c.n_queued), 0),
                    func.coalesce(func.sum(batches.c.n_running), 0),
                    func.count(),
                ).where(batches.c.status != BatchStatus.STOPPED)
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    @reads
    def batches_by_id(self, batch_ids: list[str]) -> list[BatchRecord]:
        """These batches as they are now, of any tenant (for the log line of their end)."""
        with self.db.reading() as conn:
            rows = conn.execute(select(batches).where(batches.c.id.in_(batch_ids))).mappings()
            return [batch_record(row) for row in rows]

    @reads
    def stopped_without_callback(self) -> list[BatchRecord]:
        """Stopped batches with a callback URL that has not been called yet."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches).where(
                    batches.c.status == BatchStatus.STOPPED,
                    batches.c.callback_url.is_not(None),
                    batches.c.callback_sent_at.is_(None),
                )
            ).mappings()
            return [batch_record(row) for row in rows]

    @writes
    def claim_callback(self, batch_id: str, at: float) -> bool:
        """Take the job of sending a batch's callback; False if another node took it first."""
        with self.db.writing() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.callback_sent_at.is_(None))
                    .values(callback_sent_at=at)
                ).rowcount
            )

    @writes
    def sweep(self, now: float, orphan_grace: float) -> int:
        """Delete batches whose results expired, results nobody refers to, and lost chunks."""
        with self.db.writing() as conn:
            expired = conn.execute(
                delete(batches).where(
                    batches.c.status == BatchStatus.STOPPED,
                    batches.c.end_time < now - self.result_ttl,
                )
            ).rowcount
            referenced = select(queries.c.result_id).where(queries.c.result_id.is_not(None))
            unreferenced = select(results.c.id).where(results.c.id.not_in(referenced))
            conn.execute(delete(result_chunks).where(result_chunks.c.result_id.in_(unreferenced)))
            conn.execute(delete(results).where(results.c.id.not_in(referenced)))
            conn.execute(
                delete(result_chunks).where(
                    result_chunks.c.created_at < now - orphan_grace,
                    result_chunks.c.result_id.not_in(select(results.c.id)),
                )
            )
        return expired
