"""Housekeeping of batches: expiry, callbacks, and the totals /metrics reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, delete, func, insert, select, tuple_, update

from querybatch.domain.status import BatchStatus
from querybatch.store.database import Database
from querybatch.store.jobs import batch_record
from querybatch.store.records import BatchRecord
from querybatch.store.repository import reads, writes
from querybatch.store.tables import (
    batch_packs,
    batches,
    queries,
    result_chunks,
    results,
    server_state,
    source_stats,
    sub_query_keys,
)

ORPHANS_CHECKED = "orphans_checked_before"  # server_state: see UpkeepStore.orphans_checked
# What deleting one pack counts for in a slice of expiry, in sub-queries: a pack holds the
# rows of up to a thousand small results in one row.
PACK_WEIGHT = 100


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
    def expire_slice(self, now: float, limit: int) -> ExpirySlice:
        """Delete at most ``limit`` sub-queries of batches whose results expired, oldest batch
        first, with their results and chunks (a result another query still refers to stays),
        and each batch once none of its sub-queries is left.

        One bounded transaction: a store holding a million expired sub-queries is emptied a
        slice at a time, while the engine and the API keep writing between slices.
        """
        deleted = batches_deleted = spent = 0
        with self.db.writing() as conn:
            while spent < limit:
                batch_id = conn.execute(
                    select(batches.c.id)
                    .where(
                        batches.c.status == BatchStatus.STOPPED,
                        batches.c.end_time < now - self.result_ttl,
                        batches.c.n_stored.is_(None),  # none of it is still being stored
                    )
                    .order_by(batches.c.end_time)
                    .limit(1)
                ).scalar()
                if batch_id is None:
                    return ExpirySlice(deleted, batches_deleted, done=True)
                # Its packs go first, a few at a time: each holds the rows of many sub-queries.
                packs = (
                    conn.execute(
                        select(batch_packs.c.first_position)
                        .where(batch_packs.c.batch_id == batch_id)
                        .limit(max(1, (limit - spent) // PACK_WEIGHT))
                    )
                    .scalars()
                    .all()
                )
                if packs:
                    conn.execute(
                        delete(batch_packs).where(
                            batch_packs.c.batch_id == batch_id,
                            batch_packs.c.first_position.in_(packs),
                        )
                    )
                    spent += len(packs) * PACK_WEIGHT
                    continue
                wanted = limit - spent
                rows = conn.execute(
                    select(queries.c.id, queries.c.result_id, queries.c.position)
                    .where(queries.c.batch_id == batch_id)
                    .limit(wanted)
                ).all()
                if rows:
                    conn.execute(delete(queries).where(queries.c.id.in_([r.id for r in rows])))
                    # The filters' rows of these sub-queries go with them, a slice at a time.
                    conn.execute(
                        delete(sub_query_keys).where(
                            sub_query_keys.c.batch_id == batch_id,
                            sub_query_keys.c.position.in_([r.position for r in rows]),
                        )
                    )
                    _drop_unreferenced(conn, {r.result_id for r in rows if r.result_id})
                    deleted += len(rows)
                    spent += len(rows)
                if len(rows) < wanted:
                    conn.execute(delete(batches).where(batches.c.id == batch_id))
                    batches_deleted += 1
        return ExpirySlice(deleted, batches_deleted, done=False)

    @writes
    def return_space(self, pages: int) -> int:
        """Give up to ``pages`` pages that deleted rows freed back to the disk (SQLite; on
        PostgreSQL, autovacuum's work): how many free pages are left."""
        return self.db.return_space(pages)

    @reads
    def orphans_checked(self) -> ChunkKey:
        """Where the last full look for lost runs' chunks ended (chunks are looked at in the
        order they were written, so each pass looks only at what was written since)."""
        with self.db.reading() as conn:
            checked = _orphans_checked(conn)
        return ChunkKey(checked or 0.0, "", -1)

    @writes
    def mark_orphans_checked(self, before: float) -> None:
        """Every chunk written before ``before`` was looked at: the next pass starts there."""
        with self.db.writing() as conn:
            checked = _orphans_checked(conn)
            if checked is None:
                conn.execute(insert(server_state).values(name=ORPHANS_CHECKED, value=repr(before)))
            elif checked < before:
                conn.execute(
                    update(server_state)
                    .where(server_state.c.name == ORPHANS_CHECKED)
                    .values(value=repr(before))
                )

    @writes
    def orphan_slice(
        self, before: float, after: ChunkKey, limit: int
    ) -> tuple[int, ChunkKey | None]:
        """Look at ``limit`` chunks written before ``before``, in the order they were written,
        from just after ``after``, and delete the chunks of runs that never recorded an
        outcome (no results row). Returns how many runs' chunks were deleted and the last
        chunk looked at (None once none is left before ``before``)."""
        key = tuple_(result_chunks.c.created_at, result_chunks.c.result_id, result_chunks.c.seq)
        with self.db.writing() as conn:
            seen = [
                ChunkKey(*row)
                for row in conn.execute(
                    select(
                        result_chunks.c.created_at, result_chunks.c.result_id, result_chunks.c.seq
                    )
                    .where(key > tuple_(*after), result_chunks.c.created_at < before)
                    .order_by(*key.clauses)
                    .limit(limit)
                )
            ]
            if not seen:
                return 0, None
            recorded = select(results.c.id).where(results.c.id == result_chunks.c.result_id)
            lost_ids = list(
                conn.execute(
                    select(result_chunks.c.result_id)
                    .where(
                        result_chunks.c.result_id.in_({k.result_id for k in seen}),
                        ~recorded.exists(),
                    )
                    .distinct()
                ).scalars()
            )
            if lost_ids:
                conn.execute(delete(result_chunks).where(result_chunks.c.result_id.in_(lost_ids)))
        return len(lost_ids), seen[-1]


class ChunkKey(NamedTuple):
    """A chunk's place in the order chunks were written."""

    created_at: float
    result_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class ExpirySlice:
    """What one slice of expiry deleted, and whether nothing expired is left."""

    queries: int
    batches: int
    done: bool


def _orphans_checked(conn: Connection) -> float | None:
    """Where the last look for lost runs' chunks ended, if one ever did."""
    value = conn.execute(
        select(server_state.c.value).where(server_state.c.name == ORPHANS_CHECKED)
    ).scalar()
    return None if value is None else float(value)


def _drop_unreferenced(conn: Connection, result_ids: set[str]) -> None:
    """Delete these results (and their chunks) unless a sub-query still refers to them."""
    if not result_ids:
        return
    referenced = select(queries.c.id).where(queries.c.result_id == results.c.id)
    gone = list(
        conn.execute(
            delete(results)
            .where(results.c.id.in_(result_ids), ~referenced.exists())
            .returning(results.c.id)
        ).scalars()
    )
    if gone:
        conn.execute(delete(result_chunks).where(result_chunks.c.result_id.in_(gone)))
