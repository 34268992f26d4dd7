"""The hottest reads and writes, compiled once and run on the driver's cursor.

A poll reads one query by key, or a page of a hundred sub-queries, and SQLAlchemy's way
through a statement (execution context, events, result object, row mappings) costs several
times what SQLite takes to answer it: about 130 µs against 20 µs for a query's row, measured
on the event loop of a SQLite server. A :class:`PreparedRead` is an ordinary Core ``select``
compiled once per dialect; it runs the compiled SQL on the connection's DBAPI cursor and
passes each value through the same result processors SQLAlchemy would (the JSON columns'
type decorators), so the rows are what ``Connection.execute`` returns, as plain tuples.

Only reads whose parameters are plain values (strings, numbers) go this way: no bind
processing is applied to them. The same holds for a :class:`PreparedInsert`, which stores
the sub-queries of a batch: a million rows of plain values, where SQLAlchemy's handling of
each row's parameters cost more than the database's insert.

A :class:`PreparedWrite` does the same for the writes every sub-query's run makes (claimed,
started, ended, its result and counters), which the store's single writer thread of a
SQLite server otherwise spends most of its time on in SQLAlchemy, not in the database. Its
parameters go through the bind processors SQLAlchemy would apply (a JSON column's encoder).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any]


@dataclass(slots=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]
    positions: tuple[str, ...] | None  # parameter names in order, for a positional driver
    keys: tuple[str, ...]
    types: tuple[TypeEngine[Any], ...]
    # Known after the first run: some drivers' processors depend on the column types the
    # cursor reports (PostgreSQL's numbers), which the statement alone does not tell.
    processors: tuple[tuple[int, Processor], ...] | None = None


class PreparedRead:
    """A select run straight on the DBAPI cursor of whatever connection it is given."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """The rows the statement reads with ``params``, their values as SQLAlchemy's."""
        dialect = conn.dialect
        compiled = self._compiled_for(dialect)
        values = compiled.defaults | dict(params)
        bound = values if compiled.positions is None else [values[n] for n in compiled.positions]
        with _driver_cursor(conn, compiled.sql) as cursor:
            cursor.execute(compiled.sql, bound)
            rows: list[Sequence[Any]] = cursor.fetchall()
            processors = compiled.processors
            if processors is None:
                processors = compiled.processors = _processors(dialect, compiled, cursor)
        return _processed(rows, processors)

    def mappings(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows as dictionaries by column name (or label)."""
        keys = self._compiled_for(conn.dialect).keys
        return [dict(zip(keys, row, strict=True)) for row in self.rows(conn, params)]

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        return self._compiled.get(dialect.name) or self._compile(dialect)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        columns = list(self.statement.selected_columns)
        positions = getattr(compiled, "positiontup", None)
        prepared = _Compiled(
            sql=compiled.string,
            defaults=dict(compiled.params),
            positions=tuple(positions) if positions is not None else None,
            keys=tuple(str(column.key) for column in columns),
            types=tuple(column.type for column in columns),
        )
        self._compiled[dialect.name] = prepared
        return prepared


@contextlib.contextmanager
def _driver_cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """The DBAPI cursor of ``conn``, closed after use; a driver error raised while it is used
    becomes SQLAlchemy's, as ``Connection.execute`` would raise it (the store's own error
    once it leaves ``Database.writing`` or ``reading``)."""
    dialect = conn.dialect
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def _processed(
    rows: list[Sequence[Any]], processors: tuple[tuple[int, Processor], ...]
) -> list[Sequence[Any]]:
    """The rows with each value passed through its column's result processor, if any."""
    if not processors:
        return rows
    processed: list[Sequence[Any]] = []
    for row in rows:
        values_of_row = list(row)
        for index, process in processors:
            values_of_row[index] = process(values_of_row[index])
        processed.append(values_of_row)
    return processed


def _processors(
    dialect: Dialect, compiled: _Compiled, cursor: Any
) -> tuple[tuple[int, Processor], ...]:
    """What SQLAlchemy would do to each value of a column, given the types the cursor reports."""
    found = []
    for index, (type_, described) in enumerate(
        zip(compiled.types, cursor.description, strict=True)
    ):
        process = type_.dialect_impl(dialect).result_processor(dialect, described[1])
        if process is not None:
            found.append((index, process))
    return tuple(found)


class PreparedInsert:
    """An insert of ``columns`` into ``table``, run for many rows on the DBAPI cursor."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.statement = insert(table).inline().values({name: bindparam(name) for name in columns})
        self._compiled: dict[str, tuple[str, tuple[int, ...] | None]] = {}

    def executemany(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Insert ``rows``, each its values in the order of ``columns``."""
        dialect = conn.dialect
        sql, order = self._compiled.get(dialect.name) or self._compile(dialect)
        if order is None:  # a driver that takes parameters by name
            bound: Iterable[Any] = (dict(zip(self.columns, row, strict=True)) for row in rows)
        elif order == tuple(range(len(self.columns))):
            bound = rows
        else:
            bound = ([row[i] for i in order] for row in rows)
        with _driver_cursor(conn, sql) as cursor:
            cursor.executemany(sql, bound)

    def _compile(self, dialect: Dialect) -> tuple[str, tuple[int, ...] | None]:
        compiled = self.statement.compile(dialect=dialect)
        positions = getattr(compiled, "positiontup", None)
        order = None if positions is None else tuple(self.columns.index(n) for n in positions)
        self._compiled[dialect.name] = (compiled.string, order)
        return self._compiled[dialect.name]


@dataclass(slots=True)
class _CompiledWrite:
    sql: str
    # Per parameter in the driver's order: its name, whether the caller gives it (else the
    # statement holds it: ``value``, processed), and the processor for a caller's value.
    slots: tuple[tuple[str, bool, Any, Processor | None], ...]
    positional: bool
    returning: _Compiled | None


class PreparedWrite:
    """An insert, update or delete run straight on the DBAPI cursor of a connection."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._compiled: dict[str, _CompiledWrite] = {}

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run the statement once; the number of rows it changed."""
        return self._run(conn, [params], many=False)[0]

    def executemany(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement for each set of parameters; the number of rows changed in all."""
        if not params:
            return 0
        return self._run(conn, params, many=True)[0]

    def returning(self, conn: Connection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Run the statement once; the rows its RETURNING clause gives, as SQLAlchemy's."""
        compiled = self._compiled_for(conn.dialect)
        assert compiled.returning is not None, "the statement has no RETURNING clause"
        rows = self._run(conn, [params], many=False)[1]
        return _processed(rows, compiled.returning.processors or ())

    def _run(
        self, conn: Connection, params: Sequence[Mapping[str, Any]], *, many: bool
    ) -> tuple[int, list[Sequence[Any]]]:
        dialect = conn.dialect
        compiled = self._compiled_for(dialect)
        bound = [_bind(compiled, values) for values in params]
        if not conn.in_transaction():
            conn.begin()  # as Connection.execute would: the caller commits or rolls it back
        with _driver_cursor(conn, compiled.sql) as cursor:
            if many:
                cursor.executemany(compiled.sql, bound)
                return cursor.rowcount, []
            cursor.execute(compiled.sql, bound[0])
            rows: list[Sequence[Any]] = []
            if compiled.returning is not None:
                rows = cursor.fetchall()
                if compiled.returning.processors is None:
                    compiled.returning.processors = _processors(dialect, compiled.returning, cursor)
            return cursor.rowcount, rows

    def _compiled_for(self, dialect: Dialect) -> _CompiledWrite:
        return self._compiled.get(dialect.name) or self._compile(dialect)

    def _compile(self, dialect: Dialect) -> _CompiledWrite:
        compiled = self.statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a prepared write cannot expand a list parameter (IN)")
        positions = getattr(compiled, "positiontup", None)
        names = list(positions) if positions is not None else list(compiled.params)
        own = compiled.params
        slots = []
        for name in names:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                slots.append((name, True, None, process))
            else:
                value = own[name]
                slots.append((name, False, process(value) if process else value, None))
        returning = None
        columns = list(self.statement.exported_columns)
        if columns:
            returning = _Compiled(
                sql=compiled.string,
                defaults={},
                positions=None,
                keys=tuple(str(column.key) for column in columns),
                types=tuple(column.type for column in columns),
            )
        prepared = _CompiledWrite(
            sql=compiled.string,
            slots=tuple(slots),
            positional=positions is not None,
            returning=returning,
        )
        self._compiled[dialect.name] = prepared
        return prepared


def _bind(compiled: _CompiledWrite, params: Mapping[str, Any]) -> Any:
    """One set of parameters as the driver takes them (a list, or a dict by name)."""
    values = [
        (process(params[name]) if process else params[name]) if given else value
        for name, given, value, process in compiled.slots
    ]
    if compiled.positional:
        return values
    return {slot[0]: value for slot, value in zip(compiled.slots, values, strict=True)}
