"""Result rows, stored in fixed-size chunks so a page reads only the chunks it overlaps."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, get_args

import orjson
from sqlalchemy import Text, and_, bindparam, case, delete, func, insert, select, type_coerce

from querybatch.domain.fields import Row
from querybatch.domain.status import QueryStatus
from querybatch.store.codec import unpack_bytes
from querybatch.store.database import Database
from querybatch.store.prepared import PreparedRead
from querybatch.store.repository import reads, writes
from querybatch.store.tables import batch_packs, queries, result_chunks, results

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


class BatchResult(NamedTuple):
    """A successful sub-query of a batch, with its first chunk of rows (None if it has none)."""

    position: int
    schedule_id: str
    spec_text: str  # the stored spec, undecoded: a download needs only its fields
    result_id: str
    total_rows: int
    first_chunk: bytes | None

    def fields(self) -> list[str]:
        """The field ids of the sub-query's rows, in row order."""
        fields: list[str] = orjson.loads(self.spec_text)["fields"]
        return fields

    def fields_text(self) -> str:
        """The stored text of :meth:`fields`, equal for sub-queries of equal fields, found
        without decoding the spec: ``"fields":[`` opens it and ``],"`` closes it (a quote
        within a field id is escaped, so neither occurs within one)."""
        text = self.spec_text
        start = text.find('"fields":[')
        end = text.find('],"', start)
        return text[start:end] if 0 <= start < end else text


# A pack's rows as one JSON array of wide rows, each beginning with its schedule id; or as
# the ndjson lines of the batch's download (see tables.batch_packs).
PackForm = Literal["rows", "lines"]


class Pack(NamedTuple):
    """A stopped batch's rows of a range of positions, in one of their forms (uncompressed)."""

    row_count: int
    payload: bytes


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

    @reads
    def batch_range(
        self, batch_id: str, after: int, through: int, *, packed: PackForm | None
    ) -> Pack | list[BatchResult]:
        """The rows of a batch's positions after ``after`` up to ``through``: their pack in
        the form ``packed`` asks for, if the batch stopped and the range was packed; else
        its successful sub-queries in batch order, each with its first chunk (one read for
        many small results, which a download would otherwise make one at a time)."""
        with self.db.reading() as conn:
            if packed is not None:
                found = _READ_PACK[packed].rows(conn, {"b_id": batch_id, "after": after})
                for last, row_count, data, size in found:
                    if last == through:
                        return Pack(row_count, unpack_bytes(data, size))
            params = {"b_id": batch_id, "after": after, "through": through}
            return [BatchResult(*row) for row in _BATCH_RESULTS.rows(conn, params)]

    @writes
    def drop(self, result_id: str) -> None:
        """Delete the chunks of a run that failed or lost its query."""
        with self.db.writing() as conn:
            conn.execute(delete(result_chunks).where(result_chunks.c.result_id == result_id))


# A pack of one form: the range it ends at, its rows, and its data with the data's size.
_READ_PACK: dict[PackForm, PreparedRead] = {
    form: PreparedRead(
        select(
            batch_packs.c.last_position,
            batch_packs.c.row_count,
            batch_packs.c[form],
            batch_packs.c[f"{form}_size"],
        ).where(
            batch_packs.c.batch_id == bindparam("b_id"),
            batch_packs.c.first_position == bindparam("after"),
        )
    )
    for form in get_args(PackForm)
}
_READ_CHUNKS = PreparedRead(
    select(result_chunks.c.payload)
    .where(
        result_chunks.c.result_id == bindparam("r_id"),
        result_chunks.c.seq >= bindparam("first"),
        result_chunks.c.seq <= bindparam("last"),
    )
    .order_by(result_chunks.c.seq)
)
# A result's first chunk tells its size when it holds fewer than CHUNK_ROWS rows: only a
# larger result is looked up in results (a third of the read's cost when results are small).
_TOTAL_ROWS = case(
    (
        result_chunks.c.row_count >= CHUNK_ROWS,
        select(results.c.total_rows).where(results.c.id == queries.c.result_id).scalar_subquery(),
    ),
    else_=func.coalesce(result_chunks.c.row_count, 0),
)
_BATCH_RESULTS = PreparedRead(
    select(
        queries.c.position,
        queries.c.schedule_id,
        type_coerce(queries.c.spec, Text),
        queries.c.result_id,
        _TOTAL_ROWS,
        result_chunks.c.payload,
    )
    .outerjoin(
        result_chunks,
        and_(result_chunks.c.result_id == queries.c.result_id, result_chunks.c.seq == 0),
    )
    .where(
        queries.c.batch_id == bindparam("b_id"),
        queries.c.status == QueryStatus.SUCCESS.value,
        queries.c.position > bindparam("after"),
        queries.c.position <= bindparam("through"),
    )
    .order_by(queries.c.position)
)
