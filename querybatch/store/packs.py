"""Packs of a stopped batch's rows: which batches are left to pack, and each range's pack."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, insert, select, update

from querybatch.domain.status import BatchStatus
from querybatch.store.database import Database
from querybatch.store.jobs import batch_record
from querybatch.store.records import BatchRecord
from querybatch.store.repository import reads, writes
from querybatch.store.tables import batch_packs, batches


class PackedRange(NamedTuple):
    """A range's rows in both forms a pack keeps (see ``tables.batch_packs``), compressed
    (``codec.pack_bytes``) by the packer, not on the store's writer."""

    row_count: int
    rows: bytes  # one JSON array of wide rows
    rows_size: int
    lines: bytes  # the download's ndjson lines
    lines_size: int


class PackStore:
    """The repository of batch packs (see ``tables.batch_packs``)."""

    def __init__(self, db: Database, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    @reads
    def unpacked(self, now: float, least_queries: int, limit: int) -> list[tuple[BatchRecord, int]]:
        """Up to ``limit`` stopped batches of at least ``least_queries`` sub-queries, all
        stored and not expired, whose ranges are not all looked at yet, oldest end first,
        each with the position it was packed through."""
        packed_through = func.coalesce(batches.c.packed_through, 0)
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches, packed_through.label("through"))
                .where(
                    batches.c.kind == "batch",  # not a data request's hidden batch
                    batches.c.status == BatchStatus.STOPPED,
                    batches.c.end_time >= now - self.result_ttl,
                    batches.c.n_stored.is_(None),
                    batches.c.query_amount >= least_queries,
                    packed_through < batches.c.query_amount,
                )
                .order_by(batches.c.end_time)
                .limit(limit)
            ).mappings()
            return [(batch_record(row), int(row["through"])) for row in rows]

    @writes
    def write(self, batch_id: str, after: int, through: int, pack: PackedRange | None) -> bool:
        """Record that the batch's positions after ``after`` up to ``through`` were looked
        at, with their pack if they make one; False if another packer got there first
        (``after`` is no longer where the batch was packed through)."""
        with self.db.writing() as conn:
            moved = conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id,
                    func.coalesce(batches.c.packed_through, 0) == after,
                )
                .values(packed_through=through)
            ).rowcount
            if moved and pack is not None:
                conn.execute(
                    insert(batch_packs).values(
                        batch_id=batch_id,
                        first_position=after,
                        last_position=through,
                        **pack._asdict(),
                    )
                )
            return bool(moved)
