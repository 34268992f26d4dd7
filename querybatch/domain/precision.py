"""Rounding fixed-precision numbers (money) to their field's decimals where rows are made.

A source that sums amounts in binary floating point gives ``1259.9899999999998`` for
``1259.99``. Rows are rounded once, as they leave the source, so that every output (json,
csv, parquet, downloads) shows the same ``1259.99``. Integers stay integers, booleans and
text are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from querybatch.domain.fields import FieldInfo, Row, Value

__all__ = ["RowRounder", "round_value", "row_rounder"]

RowRounder = Callable[[Sequence[Row]], list[Row]]


def round_value(value: Value, decimals: int) -> Value:
    """``value`` rounded to ``decimals`` when it is a float (``-0.0`` shown as ``0.0``)."""
    if isinstance(value, float):
        return round(value, decimals) + 0.0
    return value


def row_rounder(fields: Sequence[str], infos: Mapping[str, FieldInfo]) -> RowRounder | None:
    """A function rounding the fixed-precision columns of rows of ``fields``; None when no
    column has a precision."""
    places = [
        (index, precision)
        for index, field_id in enumerate(fields)
        if field_id in infos and (precision := infos[field_id].precision) is not None
    ]
    if not places:
        return None

    def rounded(rows: Sequence[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            values = list(row)
            for index, decimals in places:
                values[index] = round_value(values[index], decimals)
            out.append(tuple(values))
        return out

    return rounded
