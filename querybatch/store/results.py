"""Result rows, stored in fixed-size chunks so a page reads only the chunks it overlaps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from querybatch.domain.fields import Row
from querybatch.store.database import Database
from querybatch.store.tables import result_chunks

CHUNK_ROWS = 2000


def encode_rows(rows: Sequence[Row]) -> bytes:
    """Rows as stored: one JSON array of row arrays."""
    return orjson.dumps(rows)


def decode_rows(payload: bytes) -> list[list[Any]]:
    """The rows of one stored chunk."""
    rows: list[list[Any]] = orjson.loads(payload)
    return rows


def chunk_span(offset: int, end: int) -> tuple[int, int]:
    """The first and last chunk numbers holding rows ``offset`` to ``end - 1``."""
    return offset // CHUNK_ROWS, (end - 1) // CHUNK_ROWS


class ResultStore:
    """The repository of result chunks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write_chunk(self, result_id: str, seq: int, rows: Sequence[Row], now: float) -> None:
        """Store a full chunk of a run in progress (its last chunks come with its outcome)."""
        with self.db.writing() as conn:
            conn.execute(
                insert(result_chunks).values(
                    result_id=result_id,
                    seq=seq,
                    row_count=len(rows),
                    payload=encode_rows(rows),
                    created_at=now,
                )
            )

    def read_chunks(self, result_id: str, first_seq: int, last_seq: int) -> list[bytes]:
        """The payloads of chunks ``first_seq`` to ``last_seq`` of a result, in order."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(result_chunks.c.payload)
                .where(
                    result_chunks.c.result_id == result_id,
                    result_chunks.c.seq >= first_seq,
                    result_chunks.c.seq <= last_seq,
                )
                .order_by(result_chunks.c.seq)
            )
            return [row.payload for row in rows]

    def first_chunks(self, result_ids: Sequence[str]) -> dict[str, bytes]:
        """The first chunk of each of these results (all of a result up to CHUNK_ROWS rows)."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(result_chunks.c.result_id, result_chunks.c.payload).where(
                    result_chunks.c.result_id.in_(result_ids), result_chunks.c.seq == 0
                )
            )
            return {row.result_id: bytes(row.payload) for row in rows}

    def drop(self, result_id: str) -> None:
        """Delete the chunks of a run that failed or lost its query."""
        with self.db.writing() as conn:
            conn.execute(delete(result_chunks).where(result_chunks.c.result_id == result_id))
