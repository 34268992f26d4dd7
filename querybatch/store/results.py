"""Result rows, stored in fixed-size chunks so a page reads only the chunks it overlaps."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select

from querybatch.domain.fields import Row
from querybatch.store.database import Database
from querybatch.store.prepared import PreparedRead
from querybatch.store.repository import reads, writes
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


class ChunkCache:
    """The most recently read chunk payloads, up to a byte budget (thread-safe).

    Chunks are read only once their query succeeded, and never change after that, so a
    cached payload is always right; polling a finished query then costs no store read.
    """

    def __init__(self, budget: int = 64 * 1024 * 1024) -> None:
        self.budget = budget
        self._size = 0
        self._payloads: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, result_id: str, first: int, last: int) -> list[bytes] | None:
        """Every payload of chunks ``first`` to ``last``, or None if one is missing."""
        with self._lock:
            found = []
            for seq in range(first, last + 1):
                payload = self._payloads.get((result_id, seq))
                if payload is None:
                    return None
                self._payloads.move_to_end((result_id, seq))
                found.append(payload)
            return found

    def put(self, result_id: str, first: int, payloads: Sequence[bytes]) -> None:
        """Remember these payloads (chunks ``first`` onwards), evicting the oldest."""
        with self._lock:
            for seq, payload in enumerate(payloads, first):
                if len(payload) > self.budget // 8 or (result_id, seq) in self._payloads:
                    continue
                self._payloads[(result_id, seq)] = payload
                self._size += len(payload)
            while self._size > self.budget:
                _, evicted = self._payloads.popitem(last=False)
                self._size -= len(evicted)


class ResultStore:
    """The repository of result chunks."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = ChunkCache()

    @writes
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

    @reads
    def read_chunks(self, result_id: str, first_seq: int, last_seq: int) -> list[bytes]:
        """The payloads of chunks ``first_seq`` to ``last_seq`` of a finished result, in order."""
        cached = self.cache.get(result_id, first_seq, last_seq)
        if cached is not None:
            return cached
        params = {"r_id": result_id, "first": first_seq, "last": last_seq}
        with self.db.point_reading() as conn:  # one chunk may be read with read_chunks.point
            payloads = [bytes(payload) for (payload,) in _READ_CHUNKS.rows(conn, params)]
        self.cache.put(result_id, first_seq, payloads)
        return payloads

    @reads
    def first_chunks(self, result_ids: Sequence[str]) -> dict[str, bytes]:
        """The first chunk of each of these results (all of a result up to CHUNK_ROWS rows)."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(result_chunks.c.result_id, result_chunks.c.payload).where(
                    result_chunks.c.result_id.in_(result_ids), result_chunks.c.seq == 0
                )
            )
            return {row.result_id: bytes(row.payload) for row in rows}

    @writes
    def drop(self, result_id: str) -> None:
        """Delete the chunks of a run that failed or lost its query."""
        with self.db.writing() as conn:
            conn.execute(delete(result_chunks).where(result_chunks.c.result_id == result_id))


_READ_CHUNKS = PreparedRead(
    select(result_chunks.c.payload)
    .where(
        result_chunks.c.result_id == bindparam("r_id"),
        result_chunks.c.seq >= bindparam("first"),
        result_chunks.c.seq <= bindparam("last"),
    )
    .order_by(result_chunks.c.seq)
)
