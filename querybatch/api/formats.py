"""Result rows in every output format, streamed chunk by chunk.

Rows are stored typed (numbers as numbers); the ``json`` and ``keyjson`` formats give every
value as a string, as the public API does, unless clean data types were asked for.

CSV and TSV are opened in spreadsheets, which run a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return as a formula: data from a source could then run
commands on the machine of whoever opens the file. As OWASP's "CSV Injection" advice has
it, every text cell that starts with one of these is written with a leading ``'``, which
makes the spreadsheet show it as text (``=1+2`` becomes ``'=1+2``; so does the text ``-5``).
Numbers are never changed (a number -5 stays ``-5``): values are stored typed, so a numeric
column holds numbers. ``QB_CSV_ESCAPE_FORMULAS=false`` writes every value as it is, for
programs that read the files.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import orjson
from pydantic import BaseModel

from querybatch.engine.result_rows import Columns, RowChunks, ndjson_lines

MEDIA_TYPES = {
    "json": "application/json",
    "keyjson": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text(value: Any) -> str:
    """A value as the public API's json output gives it."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def _as_text(rows: list[list[Any]]) -> list[list[str]]:
    return [[text(v) for v in row] for row in rows]


def _encoded(meta: BaseModel) -> bytes:
    return meta.model_dump_json(by_alias=True).encode()


async def json_stream(
    meta: BaseModel, header: list[str] | None, chunks: RowChunks, clean: bool
) -> AsyncIterator[bytes]:
    """``{"meta": ..., "data": [header?, rows...]}`` (the ``json`` format)."""
    yield b'{"meta":' + _encoded(meta) + b',"data":['
    first = True
    if header is not None:
        yield orjson.dumps(header)
        first = False
    async for rows in chunks:
        if not rows:
            continue
        body = orjson.dumps(rows if clean else _as_text(rows))[1:-1]
        yield body if first else b"," + body
        first = False
    yield b"]}"


async def keyjson_stream(
    meta: BaseModel, columns: Columns, chunks: RowChunks, clean: bool
) -> AsyncIterator[bytes]:
    """``{"meta": ..., "data": [{field_id: value}, ...]}`` (the ``keyjson`` format)."""
    yield b'{"meta":' + _encoded(meta) + b',"data":['
    first = True
    async for rows in chunks:
        if not rows:
            continue
        objects = [
            dict(zip(columns.ids, row if clean else map(text, row), strict=True)) for row in rows
        ]
        body = orjson.dumps(objects)[1:-1]
        yield body if first else b"," + body
        first = False
    yield b"]}"


async def ndjson_stream(columns: Columns, chunks: RowChunks) -> AsyncIterator[bytes]:
    """One JSON object per line, keyed by field id, values typed (the ``ndjson`` format)."""
    async for rows in chunks:
        if rows:
            yield ndjson_lines(columns.ids, rows)


def spreadsheet_safe(value: Any) -> Any:
    """``value``, with a ``'`` before it if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _safe_rows(rows: list[list[Any]]) -> list[list[Any]]:
    # spreadsheet_safe inlined: a call less per cell.
    starts = FORMULA_STARTS
    return [
        [
            "'" + value if isinstance(value, str) and value.startswith(starts) else value
            for value in row
        ]
        for row in rows
    ]


# Rows of a chunk that are written out on a thread rather than on the event loop: a full
# chunk takes milliseconds to write, and three downloads at once would make every other
# request wait for theirs at each of its awaits.
THREAD_WRITE_ROWS = 256


def _write_rows(
    writer: Any, buffer: io.StringIO, rows: list[list[Any]], escape_formulas: bool
) -> bytes:
    writer.writerows(_safe_rows(rows) if escape_formulas else rows)
    written = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return written


async def delimited_stream(
    columns: Columns,
    chunks: RowChunks,
    delimiter: str,
    header: bool = True,
    *,
    escape_formulas: bool = True,
) -> AsyncIterator[bytes]:
    """CSV or TSV with a header line of field names, formulas escaped unless told not to."""
    buffer = io.StringIO()
    # CRLF ends a row, as RFC 4180 has it; the csv module then also quotes cells holding a
    # lone CR, which a reader (or a spreadsheet) would otherwise take for the end of the row,
    # so that the rest of the cell would start a row of its own, formula escaping or not.
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    if header:
        writer.writerow(_safe_rows([columns.names])[0] if escape_formulas else columns.names)
    async for rows in chunks:
        if len(rows) >= THREAD_WRITE_ROWS:
            yield await asyncio.to_thread(_write_rows, writer, buffer, rows, escape_formulas)
        else:
            yield _write_rows(writer, buffer, rows, escape_formulas)
    if buffer.tell():
        yield buffer.getvalue().encode()


PARQUET_GROUP_ROWS = 64 * 1024  # rows of a Parquet row group, gathered across chunks
# Rows turned into Arrow at a time (a group is eight such blocks): a group waiting to be
# written is held as Arrow columns, about a tenth of what its rows take as Python lists.
ARROW_BLOCK_ROWS = PARQUET_GROUP_ROWS // 8


class _TakenBytes(io.RawIOBase):
    """A sink that keeps what the Parquet writer wrote until it is taken."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        part = bytes(data)
        self._parts.append(part)
        self._written += len(part)
        return len(part)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        """What was written since the last take."""
        taken = b"".join(self._parts)
        self._parts.clear()
        return taken


async def parquet_stream(columns: Columns, chunks: RowChunks) -> AsyncIterator[bytes]:
    """A Parquet file, sent as it is written: rows gather into row groups of
    :data:`PARQUET_GROUP_ROWS` whatever the chunks they came in (a batch's many small results
    make one group, not one each). Rows become Arrow columns :data:`ARROW_BLOCK_ROWS` at a
    time and each group is written as soon as it is full, both on a worker thread, so memory
    holds one group as Arrow and one block of rows, and the loop never encodes either."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "currency": pa.float64(),
        "percent": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
    }
    schema = pa.schema(
        [
            (i, types.get(t, pa.string()))
            for i, t in zip(columns.ids, columns.data_types, strict=True)
        ]
    )
    sink = _TakenBytes()
    writer = pq.ParquetWriter(sink, schema)

    def arrow_block(rows: list[list[Any]]) -> Any:
        arrays = [
            _arrow_column([row[i] for row in rows], field.type) for i, field in enumerate(schema)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def write_group(blocks: list[Any]) -> bytes:
        table = pa.Table.from_batches(blocks, schema=schema)
        writer.write_table(table, row_group_size=PARQUET_GROUP_ROWS)
        return sink.take()

    try:
        pending: list[list[Any]] = []  # rows not yet turned into Arrow
        group: list[Any] = []  # the group's blocks
        async for rows in chunks:
            pending += rows
            taken = 0
            while len(pending) - taken >= ARROW_BLOCK_ROWS:
                block = pending[taken : taken + ARROW_BLOCK_ROWS]
                group.append(await asyncio.to_thread(arrow_block, block))
                taken += ARROW_BLOCK_ROWS
                if len(group) * ARROW_BLOCK_ROWS == PARQUET_GROUP_ROWS:
                    yield await asyncio.to_thread(write_group, group)
                    group = []
            del pending[:taken]
        if pending:
            group.append(await asyncio.to_thread(arrow_block, pending))
        if group:
            yield await asyncio.to_thread(write_group, group)
    finally:
        writer.close()
    yield sink.take()


def _arrow_column(values: list[Any], arrow_type: Any) -> Any:
    """A column of ``values`` as ``arrow_type``; dates travel as ISO text and become date32
    (a value that is not a date becomes null rather than failing the whole file)."""
    import pyarrow as pa

    if arrow_type != pa.date32():
        return pa.array(values, type=arrow_type)
    try:
        return pa.array(values, type=pa.string()).cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_iso_date(v) for v in values], type=pa.date32())


def _iso_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value is not None else None
    except ValueError:
        return None


def rows_stream(
    fmt: str,
    meta: BaseModel,
    columns: Columns,
    chunks: RowChunks,
    *,
    clean: bool,
    no_headers: bool,
    escape_formulas: bool = True,
) -> AsyncIterator[bytes]:
    """The body of a result page in ``fmt`` (``meta``: json and keyjson only;
    ``escape_formulas``: csv and tsv only)."""
    if fmt == "json":
        return json_stream(meta, None if no_headers else columns.names, chunks, clean)
    if fmt == "keyjson":
        return keyjson_stream(meta, columns, chunks, clean)
    if fmt == "ndjson":
        return ndjson_stream(columns, chunks)
    if fmt in ("csv", "tsv"):
        return delimited_stream(
            columns,
            chunks,
            "," if fmt == "csv" else "\t",
            not no_headers,
            escape_formulas=escape_formulas,
        )
    if fmt == "parquet":
        return parquet_stream(columns, chunks)
    raise ValueError(f"unknown format {fmt}")
