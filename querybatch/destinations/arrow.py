"""Rows as Arrow tables, for the destinations that load Arrow (DuckDB, Parquet, CSV)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from itertools import chain, repeat
from typing import Any

import pyarrow as pa

from querybatch.destinations.base import (
    ACCOUNT_COLUMN,
    LOADED_COLUMN,
    TRANSFER_COLUMN,
    Column,
    ColumnType,
    RowChunk,
    Slice,
)
from querybatch.domain.fields import Row
from querybatch.errors import LoadRejected

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def schema_of(columns: Sequence[Column], *, with_date: bool) -> pa.Schema:
    """The Arrow schema of a load: the system columns (the data date unless it lives in the
    path) around the data columns."""
    fields = [pa.field(TRANSFER_COLUMN, pa.int64(), nullable=False)]
    if with_date:
        fields.append(pa.field("_qb_data_date", pa.date32(), nullable=False))
    fields.append(pa.field(ACCOUNT_COLUMN, pa.string(), nullable=False))
    fields.extend(pa.field(c.name, ARROW_TYPES[c.type]) for c in columns)
    fields.append(pa.field(LOADED_COLUMN, pa.timestamp("us", tz="UTC"), nullable=False))
    return pa.schema(fields)


def _array(values: list[Any], target: pa.DataType, name: str) -> pa.Array:
    try:
        if pa.types.is_date32(target) or pa.types.is_timestamp(target):
            if all(v is None or isinstance(v, str) for v in values):
                return pa.array(values, pa.string()).cast(target)
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise LoadRejected(f"Column {name!r} holds a value that is not a {target}") from exc


def _wire_type(target: pa.DataType) -> pa.DataType:
    """The type a column's values arrive as: dates and timestamps come as ISO strings."""
    if pa.types.is_date32(target) or pa.types.is_timestamp(target):
        return pa.string()
    return target


def _from_strings(values: pa.Array, target: pa.DataType) -> pa.Array:
    # A column of dates repeats a handful of values; parsing each distinct string once and
    # spreading the result cost a third of parsing every row.
    encoded = values.dictionary_encode()
    return encoded.dictionary.cast(target).take(encoded.indices)


def _data_arrays(columns: Sequence[Column], rows: Sequence[Row]) -> list[pa.Array]:
    """The data columns of ``rows``; transposed by Arrow in one pass over the row tuples,
    which cost half of a Python ``zip(*rows)`` and an array per column."""
    targets = [ARROW_TYPES[c.type] for c in columns]
    wire = pa.struct([pa.field(f"c{i}", _wire_type(t)) for i, t in enumerate(targets)])
    try:
        fields = pa.array(rows, wire).flatten()
        return [
            _from_strings(f, t) if f.type != t else f for f, t in zip(fields, targets, strict=True)
        ]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # Values of another type than the column's (dates as ``date`` objects, a value
        # Arrow cannot convert): column by column, naming the column a bad value is in.
        by_column = list(zip(*rows, strict=True))
        return [
            _array(list(values), target, column.name)
            for column, values, target in zip(columns, by_column, targets, strict=True)
        ]


def chunk_table(
    schema: pa.Schema,
    columns: Sequence[Column],
    chunk: RowChunk,
    transfer_id: int,
    data_date: date | None,
    loaded_at: datetime,
) -> pa.Table:
    """One chunk of rows as a table of ``schema`` (from :func:`schema_of`)."""
    count = len(chunk.rows)
    # The values every row shares are repeated by Arrow: converting a Python datetime per
    # row cost as much as the rest of the chunk.
    arrays: list[pa.Array] = [pa.repeat(pa.scalar(transfer_id, pa.int64()), count)]
    if data_date is not None:
        arrays.append(pa.repeat(pa.scalar(data_date, pa.date32()), count))
    arrays.append(pa.repeat(pa.scalar(chunk.account, pa.string()), count))
    if count:
        arrays.extend(_data_arrays(columns, chunk.rows))
    else:
        arrays.extend(pa.array([], ARROW_TYPES[c.type]) for c in columns)
    stamp = pa.scalar(loaded_at.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    arrays.append(pa.repeat(stamp, count))
    return pa.Table.from_arrays(arrays, schema=schema)


def slices_table(
    schema: pa.Schema,
    columns: Sequence[Column],
    pieces: Sequence[tuple[Slice, RowChunk]],
    loaded_at: datetime,
) -> pa.Table:
    """Chunks of several slices as one table of ``schema`` (from :func:`schema_of`, with the
    data date). The rows of all of them are converted at once, and each chunk's shared
    values (transfer, date, account) are spread by one ``take``: a table per chunk cost
    about as much as its conversion when a chunk is one account's few rows of a day."""
    counts = [len(chunk.rows) for _, chunk in pieces]
    total = sum(counts)
    spread = pa.array(chain.from_iterable(repeat(n, c) for n, c in enumerate(counts)), pa.int32())
    arrays: list[pa.Array] = [
        pa.array([part.transfer_id for part, _ in pieces], pa.int64()).take(spread),
        pa.array([part.data_date for part, _ in pieces], pa.date32()).take(spread),
        pa.array([chunk.account for _, chunk in pieces], pa.string()).take(spread),
    ]
    rows: list[Row] = list(chain.from_iterable(chunk.rows for _, chunk in pieces))
    if total:
        arrays.extend(_data_arrays(columns, rows))
    else:
        arrays.extend(pa.array([], ARROW_TYPES[c.type]) for c in columns)
    stamp = pa.scalar(loaded_at.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    arrays.append(pa.repeat(stamp, total))
    return pa.Table.from_arrays(arrays, schema=schema)


def slice_keys(slices: Sequence[Slice]) -> pa.Table:
    """The (transfer id, data date, account) key of each account of ``slices``: what a load
    joins to delete their rows with one statement."""
    return pa.table(
        {
            "transfer_id": pa.array(
                [p.transfer_id for p in slices for _ in p.accounts], pa.int64()
            ),
            "data_date": pa.array([p.data_date for p in slices for _ in p.accounts], pa.date32()),
            "account": pa.array([a for p in slices for a in p.accounts], pa.string()),
        }
    )


class Gathered:
    """Rows on their way to an INSERT: as the chunks gave them up to ``build_rows``, then
    as Arrow tables up to ``insert_rows``, so memory stays bounded. Small chunks (a run's
    accounts of a few rows each) go in together: an INSERT costs about 2 ms whatever its
    size, more than a day's rows of one account, and so did a table built per chunk.

    ``add`` only keeps a chunk; ``build`` and ``rest`` do the conversion, which a caller on
    the event loop runs on a thread (a table of a few thousand rows takes 15-20 ms)."""

    def __init__(
        self,
        schema: pa.Schema,
        columns: Sequence[Column],
        loaded_at: datetime,
        insert_rows: int,
        build_rows: int,
    ) -> None:
        self._schema = schema
        self._columns = columns
        self._loaded_at = loaded_at
        self._insert_rows = insert_rows
        self._build_rows = build_rows
        self._pieces: list[tuple[Slice, RowChunk]] = []
        self._piece_rows = 0
        self._tables: list[pa.Table] = []
        self._table_rows = 0

    def add(self, part: Slice, chunk: RowChunk) -> bool:
        """Keep ``chunk``; whether enough rows have gathered to ``build``."""
        if chunk.rows:
            self._pieces.append((part, chunk))
            self._piece_rows += len(chunk.rows)
        return self._piece_rows >= self._build_rows

    def build(self) -> pa.Table | None:
        """Convert the rows kept so far; a table to insert when enough rows have gathered."""
        self._build()
        return self._take() if self._table_rows >= self._insert_rows else None

    def rest(self) -> pa.Table | None:
        """What is left to insert, if anything."""
        self._build()
        return self._take() if self._table_rows else None

    def _build(self) -> None:
        if self._pieces:
            table = slices_table(self._schema, self._columns, self._pieces, self._loaded_at)
            self._tables.append(table)
            self._table_rows += table.num_rows
            self._pieces, self._piece_rows = [], 0

    def _take(self) -> pa.Table:
        table = pa.concat_tables(self._tables)
        self._tables, self._table_rows = [], 0
        return table
