"""The table model the SQL destinations share: system columns, typed data columns, widening.

A transfer's table holds ``_qb_transfer_id``, ``_qb_data_date`` and ``_qb_account`` (the
slice a row belongs to), the data columns, and ``_qb_loaded_at``. A load creates the table,
adds the columns it lacks, and widens a column whose type no longer holds the new values
(an integer column becomes a float one; anything becomes text); it never narrows one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from querybatch.destinations.base import (
    ACCOUNT_COLUMN,
    DATE_COLUMN,
    LOADED_COLUMN,
    TRANSFER_COLUMN,
    Column,
    ColumnType,
)

SYSTEM_TYPES: tuple[tuple[str, ColumnType], ...] = (
    (TRANSFER_COLUMN, "integer"),
    (DATE_COLUMN, "date"),
    (ACCOUNT_COLUMN, "string"),
)

# Which stored type a wanted type may widen to: (stored, wanted) -> the new type.
WIDENINGS: dict[tuple[ColumnType, ColumnType], ColumnType] = {
    ("integer", "float"): "float",
    **{
        (stored, wanted): "string"
        for stored in ("integer", "float", "boolean", "date", "timestamp")
        for wanted in ("string",)
    },
}


@dataclass(frozen=True, slots=True)
class Change:
    """One change a load makes to an existing table: add a column, or widen one."""

    kind: str  # "add" | "widen"
    column: Column


def all_columns(columns: Sequence[Column]) -> list[Column]:
    """Every column of a new table, in order."""
    return [
        *(Column(name, kind) for name, kind in SYSTEM_TYPES),
        *columns,
        Column(LOADED_COLUMN, "timestamp"),
    ]


def plan_changes(
    existing: Mapping[str, ColumnType | None], wanted: Sequence[Column]
) -> list[Change]:
    """What an existing table (column name, lower case -> its type, None when it is of no
    type we know) needs to take ``wanted``. A column whose stored type already holds the
    values, or that cannot be widened safely, is left alone (values are cast on the way in).
    """
    changes: list[Change] = []
    for column in wanted:
        name = column.name.lower()
        if name not in existing:
            changes.append(Change("add", column))
            continue
        stored = existing[name]
        if stored is not None and stored != column.type:
            widened = WIDENINGS.get((stored, column.type))
            if widened is not None:
                changes.append(Change("widen", Column(column.name, widened)))
    return changes
