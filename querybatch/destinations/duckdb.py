"""``DWH_DUCKDB``: a table per transfer schema in a local DuckDB database file.

The file lives under the server's destinations directory (``QB_DESTINATIONS_DIR``, one
directory per team). A load is one transaction, as for PostgreSQL: create or widen the
table, delete the slice, insert the new rows chunk by chunk (as Arrow), commit; a load of
several slices deletes and inserts each in turn inside that one transaction. Every call
on the database runs on one thread of the load's own, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import Field, StringConstraints

from querybatch.destinations.base import (
    ACCOUNT_COLUMN,
    DATE_COLUMN,
    TRANSFER_COLUMN,
    Column,
    ColumnType,
    Destination,
    DestinationConfig,
    LoadResult,
    RowChunk,
    Setting,
    Slice,
    SliceRows,
    check_chunk,
    check_identifier,
    check_parts,
)
from querybatch.destinations.paths import PATH_PATTERN, inside
from querybatch.destinations.sql_model import all_columns, plan_changes
from querybatch.errors import DestinationUnreachable, LoadRejected
from querybatch.extras import require

if TYPE_CHECKING:
    import pyarrow as pa

DUCK_TYPES: dict[ColumnType, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}
KNOWN_TYPES: dict[str, ColumnType] = {name: kind for kind, name in DUCK_TYPES.items()}
T = TypeVar("T")
INSERT_ROWS = 65_536  # rows gathered before one INSERT
BUILD_ROWS = 8_192  # rows held as the chunks gave them before they become an Arrow table


class DuckDBFields(DestinationConfig):
    """The fields of a ``DWH_DUCKDB`` destination."""

    path: Annotated[str, StringConstraints(pattern=PATH_PATTERN)] = "warehouse.duckdb"
    schema_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = (
        Field(default="main", alias="schema")
    )


class DuckDBDestination(Destination):
    """A DuckDB database file on the server."""

    type_name: ClassVar[str] = "DWH_DUCKDB"
    title: ClassVar[str] = "DuckDB"
    config_model = DuckDBFields
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "path",
            "Database file",
            required=False,
            help_text="Relative to the server's destinations directory for your team",
        ),
        Setting("schema", "Schema", required=False, help_text="main unless told"),
    )
    config: DuckDBFields

    @property
    def file(self) -> Path:
        """The database file (checked to stay inside the team's directory)."""
        return inside(self.context.local_root, self.config.path)

    def _connect(self) -> Any:
        require("a DWH_DUCKDB destination", "duckdb")
        import duckdb

        self.file.parent.mkdir(parents=True, exist_ok=True)
        try:
            return duckdb.connect(str(self.file))
        except duckdb.Error as exc:
            raise DestinationUnreachable(
                f"Could not open the DuckDB file {self.config.path!r}", str(exc)[:500]
            ) from None

    async def test_connection(self) -> None:
        """Open (or create) the database file and run a statement."""

        def check() -> None:
            conn = self._connect()
            try:
                conn.execute("SELECT 1").fetchall()
            finally:
                conn.close()

        await asyncio.to_thread(check)

    async def load(
        self,
        table: str,
        part: Slice,
        columns: Sequence[Column],
        chunks: AsyncIterable[RowChunk],
    ) -> LoadResult:
        """Replace the slice's rows in one transaction (see the module's docstring)."""
        (result,) = await self.load_parts(table, columns, [SliceRows(part, chunks)])
        return result

    async def load_parts(
        self, table: str, columns: Sequence[Column], parts: Sequence[SliceRows]
    ) -> list[LoadResult]:
        """Replace each slice in turn, all in one transaction: one open of the file, one
        check of the table, one DELETE of the slices and INSERTs of their rows gathered
        together (a stretch at a time where a slice overlaps one before it), one COMMIT."""
        import duckdb

        # Arrow (pyarrow: about 33 MB) loads with a server's first load, not with the server.
        from querybatch.destinations.arrow import Gathered, schema_of, slice_keys

        check_parts(table, columns, parts)
        table = check_identifier(table, "table").lower()
        columns = [Column(c.name.lower(), c.type) for c in columns]
        schema = self.config.schema_name.lower()
        arrow_schema = schema_of(columns, with_date=True)
        loaded_at = datetime.now(UTC)
        target = f"{self.config.path}:{schema}.{table}"
        session = _Session()
        gathered = Gathered(arrow_schema, columns, loaded_at, INSERT_ROWS, BUILD_ROWS)
        results: list[LoadResult] = []
        try:
            conn = await session.open(self._connect)
            await session.call(self._begin, conn, schema, table, columns)
            for stretch in _disjoint_stretches(parts):
                await session.settle()  # the last stretch's rows are in before this DELETE
                keys = slice_keys([r.part for r in stretch])
                await session.call(_delete, conn, schema, table, keys)
                for rows in stretch:
                    accounts = frozenset(rows.part.accounts)
                    count = 0
                    async for chunk in rows.chunks:
                        check_chunk(chunk, accounts, len(columns))
                        count += len(chunk.rows)
                        if gathered.add(rows.part, chunk):
                            ready = await asyncio.to_thread(gathered.build)
                            if ready is not None:
                                await session.insert(schema, table, ready)
                    results.append(LoadResult(count, target))
                rest = await asyncio.to_thread(gathered.rest)
                if rest is not None:
                    await session.insert(schema, table, rest)
            await session.settle()
            await session.call(conn.execute, "COMMIT")
        except BaseException as exc:
            await session.abandon()
            if isinstance(exc, duckdb.Error):
                raise LoadRejected("DuckDB refused the load", str(exc)[:500]) from None
            raise
        finally:
            await session.close()
        return results

    def _begin(self, conn: Any, schema: str, table: str, columns: Sequence[Column]) -> None:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
        found = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        target = f"{_q(schema)}.{_q(table)}"
        if not found:
            definitions = ", ".join(
                f"{_q(c.name)} {DUCK_TYPES[c.type]}"
                + (" NOT NULL" if c.name.startswith("_qb_") else "")
                for c in all_columns(columns)
            )
            conn.execute(f"CREATE TABLE {target} ({definitions})")
        else:
            existing = {str(n).lower(): KNOWN_TYPES.get(str(k)) for n, k in found}
            for change in plan_changes(existing, columns):
                name, kind = _q(change.column.name), DUCK_TYPES[change.column.type]
                if change.kind == "add":
                    conn.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {name} {kind}")
                else:
                    conn.execute(f"ALTER TABLE {target} ALTER {name} TYPE {kind}")


def _delete(conn: Any, schema: str, table: str, keys: pa.Table) -> None:
    """Delete the rows of the slices whose ``keys`` are given with one statement: a DELETE
    per slice scanned the table once each."""
    conn.register("qb_slices", keys)
    try:
        conn.execute(
            f"DELETE FROM {_q(schema)}.{_q(table)} AS old USING qb_slices AS k"
            f" WHERE old.{_q(TRANSFER_COLUMN)} = k.transfer_id"
            f" AND old.{_q(DATE_COLUMN)} = k.data_date AND old.{_q(ACCOUNT_COLUMN)} = k.account"
        )
    finally:
        conn.unregister("qb_slices")


def _disjoint_stretches(parts: Sequence[SliceRows]) -> list[list[SliceRows]]:
    """The parts in order, cut before a slice that overlaps one earlier in its stretch: a
    stretch's slices are deleted together before any of their rows go in, and a later
    slice still replaces the rows an earlier one of the load gave."""
    stretches: list[list[SliceRows]] = []
    current: list[SliceRows] = []
    taken: set[tuple[int, date, str]] = set()
    for rows in parts:
        keys = {(rows.part.transfer_id, rows.part.data_date, a) for a in rows.part.accounts}
        if not taken.isdisjoint(keys):
            stretches.append(current)
            current, taken = [], set()
        current.append(rows)
        taken |= keys
    if current:
        stretches.append(current)
    return stretches


class _Session:
    """A load's connection, used on one thread of its own, off the event loop.

    At most one INSERT is under way: DuckDB inserts a table on the thread (releasing the
    GIL) while the next table is built on another (the loop only gathers the rows); the two
    took turns before, and each waited.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="qb-duckdb")
        self._loop = asyncio.get_running_loop()
        self._conn: Any = None
        self._inserting: asyncio.Future[None] | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the session's thread."""
        return await self._loop.run_in_executor(self._pool, fn, *args)

    async def open(self, connect: Callable[[], Any]) -> Any:
        """The connection ``connect`` makes, kept until :meth:`close`."""
        self._conn = await self.call(connect)
        return self._conn

    async def insert(self, schema: str, table: str, batch: pa.Table) -> None:
        """Start inserting ``batch`` once the INSERT before it has ended."""
        await self.settle()
        self._inserting = asyncio.ensure_future(
            self.call(_insert, self._conn, schema, table, batch)
        )

    async def settle(self) -> None:
        """Wait for the INSERT under way; its error is raised here."""
        if self._inserting is not None:
            inserting, self._inserting = self._inserting, None
            await inserting

    async def abandon(self) -> None:
        """Undo the transaction, once the INSERT under way (if any) has ended."""
        inserting = self._inserting
        if inserting is not None:
            await asyncio.wait([inserting])
            if not inserting.cancelled():
                inserting.exception()  # retrieved: the error raised is the one being handled
        if self._conn is not None:
            await self.call(_rollback, self._conn)

    async def close(self) -> None:
        """Close the connection and let the thread go."""
        try:
            if self._conn is not None:
                await self.call(self._conn.close)
        finally:
            self._pool.shutdown(wait=False)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _insert(conn: Any, schema: str, table: str, batch: Any) -> None:
    names = ", ".join(_q(n) for n in batch.schema.names)
    conn.register("qb_chunk", batch)
    try:
        conn.execute(f"INSERT INTO {_q(schema)}.{_q(table)} ({names}) SELECT {names} FROM qb_chunk")
    finally:
        conn.unregister("qb_chunk")


def _rollback(conn: Any) -> None:
    try:
        conn.execute("ROLLBACK")
    except Exception:  # no transaction was open yet: nothing to undo
        return
