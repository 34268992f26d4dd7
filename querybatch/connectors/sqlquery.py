"""Building the SELECT of one sub-query against a table source, with SQLAlchemy Core.

Field names only pick among column objects made from the configured column list when the
source was opened; account ids, dates, filter values and the row limit are bound parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from querybatch.connectors.mapping import (
    MappedField,
    converter,
    data_type_of_value,
    map_fields,
)
from querybatch.connectors.sqlfilter import (
    FilterColumn,
    default_contains,
    escape_like,
    filter_clauses,
    order_clauses,
    regex_conditions,
)
from querybatch.domain.fields import DataType, Row
from querybatch.domain.filters import FilterSyntaxError, compile_filter
from querybatch.errors import ConfigurationError, ConnectorError

if TYPE_CHECKING:
    from querybatch.connectors.table import TableConfig

__all__ = [
    "CASEFOLD_FUNCTION",
    "Plan",
    "Query",
    "QueryBuilder",
    "data_type_of",
    "needed_columns",
]

CASEFOLD_FUNCTION = "qb_casefold"
"""SQLite function registered by the sql connector: Python's ``str.casefold``."""

# Dialects whose regular-expression operator SQLAlchemy compiles to a *search* with the
# semantics of the engine's RE2 for the patterns filters use (on SQLite the sql connector
# registers REGEXP as RE2 itself).
_REGEX_DIALECTS = frozenset({"postgresql", "sqlite", "duckdb"})
_INTEGER = re.compile(r"-?[0-9]+")
_DAY = timedelta(days=1)
Expr = ColumnElement[Any]
Query: TypeAlias = "sa.Select[*tuple[Any, ...]]"
Types = Mapping[str, sa.types.TypeEngine[Any]]


@dataclass(frozen=True, slots=True)
class Plan:
    """One sub-query, ready to run: the statement and how to turn its rows into Rows."""

    statement: Query
    account_check: Query | None
    accounts: tuple[str, ...]
    convert: Callable[[Sequence[Any]], Row]
    keep: Callable[[Row], bool] | None
    limit: int | None


@dataclass(frozen=True, slots=True)
class QueryBuilder:
    """The resolved columns of one source and the statements built from them."""

    fields: Mapping[str, MappedField]
    table: FromClause
    date_column: Expr
    date_expr: Expr
    account_column: Expr
    account_type: DataType
    name_column: Expr | None
    dialect: str

    @classmethod
    def for_source(
        cls,
        ds_id: str,
        config: TableConfig,
        columns: Types,
        make_source: Callable[[Types], FromClause],
        conn: sa.Connection,
        where: str,
    ) -> QueryBuilder:
        """Check the configured columns exist in ``columns``; type and map the fields."""
        needed = needed_columns(config)
        for column, key in needed:
            if column not in columns:
                raise ConfigurationError(
                    f"sources.{ds_id}.{key}: column {column!r} does not exist in {where}"
                )
        used = {c: columns[c] for c, _ in needed}
        table = make_source(used)
        types = {c: _data_type(conn, table, c, t) for c, t in used.items()}
        date_type = used[config.date_column]
        if not isinstance(date_type, sa.Date | sa.DateTime | sa.String | sa.types.NullType):
            raise ConfigurationError(
                f"sources.{ds_id}.date_column: column {config.date_column!r} is {date_type}; "
                "it must be a DATE, a TIMESTAMP or YYYY-MM-DD text"
            )
        implied: dict[str, DataType] = {
            config.date_column: "date",
            config.account_column: types[config.account_column],
        }
        if config.account_name_column:
            implied[config.account_name_column] = "string"
        fields = map_fields(ds_id, config, types, implied)
        date_column = table.c[config.date_column]
        date_expr: Expr = date_column
        dialect = conn.dialect.name
        if isinstance(date_type, sa.DateTime):
            # Group timestamps by their day; SQLite keeps them as text, which date() cuts.
            date_expr = (
                sa.func.date(date_column) if dialect == "sqlite" else sa.cast(date_column, sa.Date)
            )
        name = config.account_name_column
        return cls(
            fields=fields,
            table=table,
            date_column=date_column,
            date_expr=date_expr,
            account_column=table.c[config.account_column],
            account_type=types[config.account_column],
            name_column=table.c[name] if name else None,
            dialect=dialect,
        )

    def accounts_query(self) -> Query:
        """Every account id, with its name when a name column is configured."""
        account = self.account_column
        name = sa.func.min(self.name_column) if self.name_column is not None else account
        return (
            sa.select(account, name).where(account.is_not(None)).group_by(account).order_by(account)
        )

    def plan(self, request: Any) -> Plan:
        """The statement of one fetch request (a :class:`FetchRequest`)."""
        unknown = [f for f in request.fields if f not in self.fields]
        if unknown or not request.fields:
            raise ConnectorError(f"unknown field {unknown[0]!r}" if unknown else "no fields")
        exprs = {fid: self._expression(fid) for fid in self.fields}
        picked = [self.fields[f] for f in request.fields]
        stmt: Query = sa.select(
            *(exprs[f].label(f"f{i}") for i, f in enumerate(request.fields))
        ).select_from(self.table)
        stmt = stmt.where(*self._date_range(request.start_date, request.end_date))
        accounts: tuple[str, ...] = tuple(dict.fromkeys(request.accounts))
        check = None
        if accounts:
            typed = self._typed_accounts(accounts)
            stmt = stmt.where(self._account_match(typed))
            check = sa.select(self.account_column).where(self._account_match(typed)).distinct()
        dims = list(dict.fromkeys(f for f in request.fields if not self.fields[f].info.is_metric))
        if dims:
            stmt = stmt.group_by(*(exprs[f] for f in dims))
        else:  # no groups: one row of totals, or none when nothing matched
            stmt = stmt.having(sa.func.count() > 0)
        keep = None
        if request.filter is not None:
            if regex_conditions(request.filter) and self.dialect not in _REGEX_DIALECTS:
                keep = self._python_filter(request)
            else:
                stmt = self._apply_filter(stmt, request, exprs, set(dims))
        if request.order_rows:
            stmt = stmt.order_by(*order_clauses(request.order_rows, exprs))
        limit = request.max_rows
        if limit is not None and keep is None:
            stmt = stmt.limit(max(limit, 0))
        convs = [converter(f.info.data_type) for f in picked]

        def convert(raw: Sequence[Any]) -> Row:
            return tuple([c(v) for c, v in zip(convs, raw, strict=True)])

        return Plan(stmt, check, accounts, convert, keep, limit)

    def _expression(self, field_id: str) -> Expr:
        field = self.fields[field_id]
        column: Expr = self.table.c[field.source]
        if column is self.date_column:
            column = self.date_expr
        if not field.info.is_metric:
            return column
        aggregate: Callable[[Expr], Expr] = getattr(sa.func, field.info.aggregation)
        return aggregate(column)

    def _date_range(self, start: date, end: date) -> list[ColumnElement[bool]]:
        column = self.date_column
        if isinstance(column.type, sa.DateTime):
            low: Any = datetime.combine(start, time())
            high: Any = datetime.combine(end + _DAY, time())
        elif isinstance(column.type, sa.Date):
            low, high = start, end + _DAY
        else:  # ISO text sorts as the dates do
            low, high = start.isoformat(), (end + _DAY).isoformat()
        return [column >= sa.literal(low, column.type), column < sa.literal(high, column.type)]

    def _typed_accounts(self, accounts: Sequence[str]) -> list[Any]:
        if self.account_type == "int":
            return [int(a) for a in accounts if _INTEGER.fullmatch(a)]
        return list(accounts)

    def _account_match(self, typed: list[Any]) -> ColumnElement[bool]:
        column = self.account_column
        if self.account_type not in ("int", "string"):
            column = sa.cast(column, sa.String)
        return column.in_(typed)

    def _apply_filter(
        self, stmt: Query, request: Any, exprs: Mapping[str, Expr], grouped: set[str]
    ) -> Query:
        columns = {
            fid: FilterColumn(exprs[fid], f.info.data_type, f.info.is_metric)
            for fid, f in self.fields.items()
        }
        contains = _casefold_contains if self.dialect == "sqlite" else default_contains
        clauses = filter_clauses(request.filter, columns, grouped, contains)
        if clauses.where is not None:
            stmt = stmt.where(clauses.where)
        if clauses.having is not None:
            stmt = stmt.having(clauses.having)
        return stmt

    def _python_filter(self, request: Any) -> Callable[[Row], bool]:
        missing = sorted(request.filter.fields - set(request.fields))
        if missing:
            raise ConnectorError(
                f"this database cannot match regular expressions: add {missing[0]} to fields "
                "to filter on it"
            )
        types = {fid: f.info.data_type for fid, f in self.fields.items()}
        try:
            return compile_filter(request.filter, request.fields, types)
        except FilterSyntaxError as exc:
            raise ConnectorError(f"invalid filter: {exc}") from exc


def _casefold_contains(expr: Expr, needle: str) -> ColumnElement[bool]:
    # SQLite's lower() and LIKE fold ASCII only; Python's casefold matches the engine.
    folded: Expr = getattr(sa.func, CASEFOLD_FUNCTION)(sa.cast(expr, sa.String))
    return folded.like(f"%{escape_like(needle)}%", escape="\\")


def needed_columns(config: TableConfig) -> list[tuple[str, str]]:
    """Every column the source uses, and the settings key that names it."""
    needed = [(config.date_column, "date_column"), (config.account_column, "account_column")]
    if config.account_name_column:
        needed.append((config.account_name_column, "account_name_column"))
    for field_id in [*config.dimensions, *config.metrics]:
        if field_id in config.columns:
            needed.append((config.columns[field_id], f"columns.{field_id}"))
        elif field_id in config.metrics:
            needed.append((field_id, f"metrics.{field_id}"))
        else:
            needed.append((field_id, "dimensions"))
    first: dict[str, str] = {}
    for column, key in needed:
        first.setdefault(column, key)
    return list(first.items())


def data_type_of(sql_type: sa.types.TypeEngine[Any]) -> DataType | None:
    """The data type of a column of ``sql_type``; None when the type says nothing.

    Timestamps other than the date column are text: grouping by them gives one row per
    instant, so they must not pose as dates.
    """
    if isinstance(sql_type, sa.Boolean):
        return "bool"
    if isinstance(sql_type, sa.Integer):
        return "int"
    if isinstance(sql_type, sa.Numeric | sa.Float):
        return "float"
    if isinstance(sql_type, sa.Date):
        return "date"
    if isinstance(sql_type, sa.String | sa.DateTime):
        return "string"
    return None


def _data_type(
    conn: sa.Connection, table: FromClause, column: str, sql_type: sa.types.TypeEngine[Any]
) -> DataType:
    known = data_type_of(sql_type)
    if known is not None:
        return known
    # An untyped column (SQLite without a declared type): judge by a value it holds.
    col = table.c[column]
    sample = conn.execute(sa.select(col).where(col.is_not(None)).limit(1)).scalar()
    return data_type_of_value(sample)
