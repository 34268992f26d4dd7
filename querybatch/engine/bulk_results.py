"""Writing a bulk batch's results file: one JSON line per operation, in line order.

Each line is ``{"line": n, "status": "SUCCESS", "result": {"schedule_id", "total_rows",
"fields", "rows"}}`` or ``{"line": n, "status": "FAILURE"|"STOPPED", "error": {...}}``.
Rows are spliced in from the stored result chunks without decoding them, so a large result
passes through a chunk at a time.
"""

from __future__ import annotations

from typing import Any

import orjson

from querybatch.domain.bulk import LineStatus
from querybatch.domain.status import QueryStatus
from querybatch.engine.bulk_io import ChunkWriter, new_file
from querybatch.store.bulk import BulkRecord
from querybatch.store.records import ErrorInfo, QueryRecord
from querybatch.store.results import CHUNK_ROWS
from querybatch.store.store import Store

PAGE = 500  # operations read per store call
RESULT_CHUNKS_PER_READ = 4
SMALL_ROWS_PER_READ = 20_000

_EXPIRED = ErrorInfo(
    "STATUS_NOT_FOUND", "The operation's result expired before the results file was written"
)


async def write_results(store: Store, record: BulkRecord) -> tuple[str, int]:
    """Write the results of the batch's query batch; (results file id, lines not SUCCESS)."""
    assert record.query_batch_id is not None
    file_id = await new_file(store, record.account, "result", record.id)
    writer = ChunkWriter(store, file_id)
    failed = 0
    expected = 1  # the next line number; the query at position n ran line n
    while True:
        queries = await store.jobs.batch_queries(record.query_batch_id, expected - 1, PAGE)
        small = await _small_results(store, queries)
        for query in queries:
            failed += await _missing(writer, expected, query.position)
            if query.status is not QueryStatus.SUCCESS or query.result is None:
                failed += 1
            await _write_query(writer, store, query, small)
            expected = query.position + 1
        if len(queries) < PAGE:
            break
    # The query batch (or its tail) is gone when its results expired before they were written.
    failed += await _missing(writer, expected, (record.lines_total or 0) + 1)
    await writer.close()
    return file_id, failed


async def _missing(writer: ChunkWriter, first: int, end: int) -> int:
    for number in range(first, end):
        await writer.write(_error_line(number, LineStatus.FAILURE.value, _EXPIRED))
    return max(0, end - first)


async def _small_results(store: Store, queries: list[QueryRecord]) -> dict[str, bytes]:
    """The rows of the page's results that fit one chunk, fetched in a few reads.

    Most operations return few rows; one read per operation would dominate the time. Reads
    stop at SMALL_ROWS_PER_READ rows each, so memory stays bounded whatever the results.
    """
    groups: list[list[str]] = [[]]
    rows = 0
    for query in queries:
        result = query.result
        if query.status is not QueryStatus.SUCCESS or result is None:
            continue
        if not 0 < result.total_rows <= CHUNK_ROWS:
            continue
        if rows + result.total_rows > SMALL_ROWS_PER_READ:
            groups.append([])
            rows = 0
        groups[-1].append(result.id)
        rows += result.total_rows
    small: dict[str, bytes] = {}
    for ids in groups:
        if ids:
            small.update(await store.results.first_chunks(ids))
    return small


async def _write_query(
    writer: ChunkWriter, store: Store, query: QueryRecord, small: dict[str, bytes]
) -> None:
    number = query.position
    if query.status is QueryStatus.SUCCESS and query.result is not None:
        result: dict[str, Any] = {
            "schedule_id": query.schedule_id,
            "total_rows": query.result.total_rows,
            "fields": list(query.spec.fields),
        }
        if query.excluded_accounts:
            result["excluded_accounts"] = query.excluded_accounts
        head = orjson.dumps({"line": number, "status": LineStatus.SUCCESS.value, "result": result})
        # Open the result object again to append "rows" streamed from the stored chunks.
        await writer.write(head[:-2] + b',"rows":[')
        payload = small.get(query.result.id)
        if payload is not None:
            await writer.write(_inner(payload))
        else:
            await _write_rows(writer, store, query.result.id, query.result.total_rows)
        await writer.write(b"]}}\n")
        return
    status = query.status.value if query.status.is_final else LineStatus.STOPPED.value
    error = query.error or ErrorInfo("QUERY_STOPPED", f"The operation ended as {status}")
    await writer.write(_error_line(number, status, error))


async def _write_rows(writer: ChunkWriter, store: Store, result_id: str, total: int) -> None:
    last = (total - 1) // CHUNK_ROWS if total else -1
    first_written = True
    seq = 0
    while seq <= last:
        end = min(seq + RESULT_CHUNKS_PER_READ - 1, last)
        payloads = await store.results.read_chunks(result_id, seq, end)
        for payload in payloads:
            inner = _inner(payload)
            if not inner:
                continue
            await writer.write(inner if first_written else b"," + inner)
            first_written = False
        seq = end + 1


def _inner(payload: bytes) -> bytes:
    return bytes(payload).strip()[1:-1]  # a chunk is one JSON array of rows: its elements


def _error_line(number: int, status: str, error: ErrorInfo) -> bytes:
    detail: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.description:
        detail["description"] = error.description
    return orjson.dumps({"line": number, "status": status, "error": detail}) + b"\n"
