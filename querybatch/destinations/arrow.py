"""Rows as Arrow tables, for the destinations that load Arrow (DuckDB, Parquet, CSV)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from querybatch.destinations.base import (
    ACCOUNT_COLUMN,
    LOADED_COLUMN,
    TRANSFER_COLUMN,
    Column,
    ColumnType,
    RowChunk,
)
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
    by_column = list(zip(*chunk.rows, strict=True)) if count else [() for _ in columns]
    for column, values in zip(columns, by_column, strict=True):
        arrays.append(_array(list(values), ARROW_TYPES[column.type], column.name))
    stamp = pa.scalar(loaded_at.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    arrays.append(pa.repeat(stamp, count))
    return pa.Table.from_arrays(arrays, schema=schema)
