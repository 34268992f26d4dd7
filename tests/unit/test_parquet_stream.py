"""Parquet answers: row groups gathered across chunks, sent while they are written."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pyarrow.parquet as pq

from querybatch.api.formats import ARROW_BLOCK_ROWS, PARQUET_GROUP_ROWS, parquet_stream
from querybatch.engine.result_rows import Columns

COLUMNS = Columns(["day", "n", "name"], ["Day", "N", "Name"], ["date", "int", "string"])


async def test_rows_of_many_small_chunks_make_full_row_groups_sent_as_each_is_written() -> None:
    total = PARQUET_GROUP_ROWS * 2 + 100
    consumed = 0

    async def chunks() -> AsyncIterator[list[list[Any]]]:
        nonlocal consumed
        for start in range(0, total, 7):
            rows = [
                [f"2026-01-{1 + n % 28:02d}", n, f"r{n}"]
                for n in range(start, min(start + 7, total))
            ]
            consumed += len(rows)
            yield rows

    parts: list[tuple[int, bytes]] = []
    async for part in parquet_stream(COLUMNS, chunks()):
        parts.append((consumed, part))
    # The first row group left before the rows of the second were read: nothing spools.
    assert parts[0][0] < 2 * PARQUET_GROUP_ROWS and parts[0][1].startswith(b"PAR1")
    file = pq.ParquetFile(io.BytesIO(b"".join(part for _, part in parts)))
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [
        PARQUET_GROUP_ROWS,
        PARQUET_GROUP_ROWS,
        100,
    ]
    table = file.read()
    assert table.column("n").to_pylist() == list(range(total))
    assert str(table.schema.field("day").type) == "date32[day]"


async def test_no_rows_is_a_valid_file_of_the_columns() -> None:
    async def chunks() -> AsyncIterator[list[list[Any]]]:
        for _ in ():
            yield []

    data = b"".join([part async for part in parquet_stream(COLUMNS, chunks())])
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 0 and table.column_names == COLUMNS.ids


async def test_chunks_of_any_size_make_full_row_groups_of_every_row_in_order() -> None:
    # One chunk larger than three groups, then chunks that straddle blocks and groups.
    sizes = [3 * PARQUET_GROUP_ROWS + 5, ARROW_BLOCK_ROWS - 1, 2, PARQUET_GROUP_ROWS + 3, 1]
    total = sum(sizes)

    async def chunks() -> AsyncIterator[list[list[Any]]]:
        start = 0
        for size in sizes:
            yield [[f"2026-02-{1 + n % 28:02d}", n, f"r{n}"] for n in range(start, start + size)]
            start += size

    data = b"".join([part async for part in parquet_stream(COLUMNS, chunks())])
    file = pq.ParquetFile(io.BytesIO(data))
    groups = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    full, rest = divmod(total, PARQUET_GROUP_ROWS)
    assert groups == [PARQUET_GROUP_ROWS] * full + [rest]
    table = file.read()
    assert table.column("n").to_pylist() == list(range(total))
    assert table.column("name").to_pylist()[-1] == f"r{total - 1}"
    assert table.column("day").to_pylist()[PARQUET_GROUP_ROWS].isoformat() == (
        f"2026-02-{1 + PARQUET_GROUP_ROWS % 28:02d}"
    )
