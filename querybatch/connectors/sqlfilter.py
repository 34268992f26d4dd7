"""Translating parsed filters and row orders into SQLAlchemy expressions.

The semantics are those of :func:`querybatch.domain.filters.compile_filter`, which the engine
applies when a connector does not push a filter down: a missing (NULL) cell satisfies only
the negated operators, numbers compare as numbers, ``=@`` is a case-insensitive substring test
and ``=~`` a regular-expression search. Every value becomes a bound parameter; field names
only select among the expressions the caller built from its configured columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from querybatch.domain.fields import DataType
from querybatch.domain.filters import (
    Condition,
    Filter,
    FilterSyntaxError,
    OrderKey,
    pattern_search,
)
from querybatch.domain.filters import _parse_number as parse_number  # the engine's parsing
from querybatch.errors import ConnectorError

__all__ = [
    "FilterClauses",
    "FilterColumn",
    "escape_like",
    "filter_clauses",
    "order_clauses",
    "regex_conditions",
]

NUMERIC = frozenset({"int", "float", "currency", "percent"})
_NEGATED = frozenset({"!=", "!@", "!~"})
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}
_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
Expr = ColumnElement[Any]
Contains = Callable[[Expr, str], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class FilterClauses:
    """A filter as a WHERE part (raw rows) and a HAVING part (groups); either may be None."""

    where: ColumnElement[bool] | None
    having: ColumnElement[bool] | None


@dataclass(frozen=True, slots=True)
class FilterColumn:
    """What the translation needs to know of one field."""

    expr: Expr
    data_type: DataType
    is_metric: bool


def escape_like(text: str) -> str:
    """``text`` with LIKE wildcards escaped for ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def default_contains(expr: Expr, needle: str) -> ColumnElement[bool]:
    """Case-insensitive substring test with the database's ILIKE."""
    return as_text(expr).ilike(f"%{escape_like(needle)}%", escape="\\")


def as_text(expr: Expr) -> Expr:
    """The expression as text (numbers compared with ``=@`` are matched as their digits)."""
    if isinstance(expr.type, sa.String):
        return expr
    return sa.cast(expr, sa.String)


def filter_clauses(
    flt: Filter,
    columns: Mapping[str, FilterColumn],
    grouped: set[str],
    contains: Contains = default_contains,
) -> FilterClauses:
    """Split ``flt`` into WHERE (dimension conditions) and HAVING (metric conditions).

    An OR across metric and dimension conditions goes to HAVING whole, which needs its
    dimensions grouped (requested); otherwise ConnectorError.
    """
    unknown = sorted(flt.fields - columns.keys())
    if unknown:
        raise ConnectorError(f"unknown filter field {unknown[0]!r}")
    has_metric = any(columns[name].is_metric for name in flt.fields)
    if not has_metric:
        return FilterClauses(_expression(flt.groups, columns, contains), None)
    if len(flt.groups) == 1:
        (group,) = flt.groups
        dims = tuple(c for c in group if not columns[c.field].is_metric)
        metrics = tuple(c for c in group if columns[c.field].is_metric)
        where = _expression((dims,), columns, contains) if dims else None
        return FilterClauses(where, _expression((metrics,), columns, contains))
    loose = sorted(n for n in flt.fields if not columns[n].is_metric and n not in grouped)
    if loose:
        raise ConnectorError(
            f"a filter that ORs metric conditions with {loose[0]} needs {loose[0]} in fields"
        )
    return FilterClauses(None, _expression(flt.groups, columns, contains))


def _expression(
    groups: Sequence[Sequence[Condition]], columns: Mapping[str, FilterColumn], contains: Contains
) -> ColumnElement[bool]:
    return sa.or_(
        *(sa.and_(*(_condition(c, columns[c.field], contains) for c in group)) for group in groups)
    )


def _condition(
    condition: Condition, column: FilterColumn, contains: Contains
) -> ColumnElement[bool]:
    try:
        test = _test(condition, column, contains)
    except FilterSyntaxError as exc:
        raise ConnectorError(f"invalid filter: {exc}") from exc
    if condition.op in _NEGATED:
        return sa.or_(column.expr.is_(None), test)
    return test


def _test(condition: Condition, column: FilterColumn, contains: Contains) -> ColumnElement[bool]:
    op, value, expr = condition.op, condition.value, column.expr
    if op in ("=~", "!~"):
        pattern_search(value)  # the engine's bounds and syntax hold whatever the database
        test = as_text(expr).regexp_match(value)
        return sa.not_(test) if op == "!~" else test
    if op in ("=@", "!@"):
        found = contains(expr, value.casefold())
        return sa.not_(found) if op == "!@" else found
    if column.data_type in NUMERIC:
        return _numeric(condition, expr)
    if column.data_type == "date":
        return _COMPARE[op](expr, _date_value(condition, expr))
    if column.data_type == "bool" and op in ("==", "!="):
        word = _BOOL_WORDS.get(value.strip().lower())
        if word is not None and isinstance(expr.type, sa.Boolean):
            return _COMPARE[op](expr, sa.literal(word))
    return _COMPARE[op](as_text(expr), sa.literal(value, sa.String))


def _numeric(condition: Condition, expr: Expr) -> ColumnElement[bool]:
    number = parse_number(condition.value)
    if number is None:
        if condition.op in ("==", "!="):
            # Text never equals a number's digits: == holds for no row, != for every row.
            return sa.true() if condition.op == "!=" else sa.false()
        raise FilterSyntaxError(
            f"field {condition.field!r} is numeric but {condition.op} compares it with "
            f"{condition.value!r}, which is not a number"
        )
    return _COMPARE[condition.op](expr, sa.literal(number))


def _date_value(condition: Condition, expr: Expr) -> Any:
    try:
        day = date.fromisoformat(condition.value)
    except ValueError:
        raise FilterSyntaxError(
            f"field {condition.field!r} is a date; {condition.op} needs a YYYY-MM-DD value, "
            f"got {condition.value!r}"
        ) from None
    if len(condition.value) != 10:
        raise FilterSyntaxError(f"field {condition.field!r} needs a YYYY-MM-DD value")
    if isinstance(expr.type, sa.Date | sa.DateTime):
        return sa.literal(day, expr.type)
    return sa.literal(day.isoformat(), sa.String)


def order_clauses(keys: Sequence[OrderKey], columns: Mapping[str, Expr]) -> list[Expr]:
    """ORDER BY terms: NULLs last in either direction, as the engine sorts."""
    terms: list[Expr] = []
    for key in keys:
        expr = columns[key.field]
        terms.append(sa.case((expr.is_(None), 1), else_=0))
        terms.append(expr.desc() if key.descending else expr.asc())
    return terms


def regex_conditions(flt: Filter | None) -> bool:
    """Whether the filter has a regular-expression condition."""
    return flt is not None and any(c.op in ("=~", "!~") for g in flt.groups for c in g)
