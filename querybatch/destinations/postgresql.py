"""``DWH_POSTGRESQL``: a table per transfer schema in a PostgreSQL database, loaded with COPY.

A load is one transaction: lock the table's name (loads into one table take turns), create
the schema and table or add and widen columns, delete the slice's rows, COPY the new ones,
commit. A failure at any point rolls all of it back, so the slice's previous rows stay. A
load of several slices deletes and copies each in turn inside that one transaction.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, StringConstraints

from querybatch.destinations.base import (
    ACCOUNT_COLUMN,
    DATE_COLUMN,
    LOADED_COLUMN,
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
from querybatch.destinations.sql_model import Change, all_columns, plan_changes
from querybatch.errors import DestinationError, DestinationUnreachable, LoadRejected
from querybatch.extras import require

PG_TYPES: dict[ColumnType, str] = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp with time zone",
}
KNOWN_TYPES: dict[str, ColumnType] = {name: kind for kind, name in PG_TYPES.items()}
Name = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class PostgresFields(DestinationConfig):
    """The fields of a ``DWH_POSTGRESQL`` destination."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\s/?#@]+$")]
    port: int = Field(default=5432, ge=1, le=65535)
    database_name: Name
    username: Name
    password: Annotated[SecretStr, Field(max_length=1000)] | None = None
    schema_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = (
        Field(default="public", alias="schema")
    )
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class PostgresDestination(Destination):
    """A PostgreSQL database (psycopg 3)."""

    type_name: ClassVar[str] = "DWH_POSTGRESQL"
    title: ClassVar[str] = "PostgreSQL"
    config_model = PostgresFields
    password_field: ClassVar[str | None] = "password"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("host", "Host"),
        Setting("port", "Port", "number", required=False, help_text="5432 unless told"),
        Setting("database_name", "Database"),
        Setting("username", "User"),
        Setting("password", "Password", "password", required=False),
        Setting("schema", "Schema", required=False, help_text="public unless told"),
        Setting(
            "sslmode",
            "TLS mode",
            "select",
            required=False,
            options=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
        ),
    )
    config: PostgresFields
    _hostaddr: str | None = None

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """The database server."""
        return ((self.config.host, self.config.port),)

    def pin(self, host: str, address: str) -> None:
        """Connect to the checked address (libpq ``hostaddr``); TLS still checks the name."""
        if host == self.config.host:
            self._hostaddr = address

    def _params(self) -> dict[str, Any]:
        config = self.config
        params: dict[str, Any] = {
            "host": config.host,
            "port": config.port,
            "dbname": config.database_name,
            "user": config.username,
            "sslmode": config.sslmode,
            "connect_timeout": 10,
            "application_name": "querybatch",
            # Never the server's own ~/.pgpass: a path under /dev/null cannot exist.
            "passfile": os.path.join(os.devnull, "pgpass"),
        }
        if self._hostaddr is not None:
            params["hostaddr"] = self._hostaddr
        if config.password is not None:
            params["password"] = config.password.get_secret_value()
        return params

    async def _connect(self) -> Any:
        require("a DWH_POSTGRESQL destination", "psycopg")
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(**self._params())
        except psycopg.Error as exc:
            raise DestinationUnreachable(
                f"Could not connect to PostgreSQL at {self.config.host}:{self.config.port}",
                _first_line(exc),
            ) from None

    async def test_connection(self) -> None:
        """Connect, and check the user may create tables in the schema (or the schema)."""
        import psycopg

        conn = await self._connect()
        try:
            row = await (
                await conn.execute(
                    "SELECT CASE WHEN to_regnamespace(%s) IS NULL"
                    " THEN has_database_privilege(current_database(), 'CREATE')"
                    " ELSE has_schema_privilege(%s, 'CREATE') END",
                    [self.config.schema_name, self.config.schema_name],
                )
            ).fetchone()
        except psycopg.Error as exc:
            raise DestinationError("PostgreSQL refused the check", _first_line(exc)) from None
        finally:
            await conn.close()
        if not row or not row[0]:
            raise DestinationError(
                f"User {self.config.username!r} may not create tables in schema "
                f"{self.config.schema_name!r}"
            )

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
        """Replace each slice in turn, all in one transaction: one connection, one lock and
        check of the table, a DELETE and a COPY per slice, one COMMIT."""
        import psycopg

        check_parts(table, columns, parts)
        table = check_identifier(table, "table").lower()
        columns = [Column(c.name.lower(), c.type) for c in columns]
        schema = self.config.schema_name
        delete = _sql(
            "DELETE FROM {}.{} WHERE {} = %s AND {} = %s AND {} = ANY(%s)",
            schema,
            table,
            TRANSFER_COLUMN,
            DATE_COLUMN,
            ACCOUNT_COLUMN,
        )
        results: list[LoadResult] = []
        conn = await self._connect()
        try:
            async with conn.transaction():
                created = await self._prepare(conn, schema, table, columns)
                for rows in parts:
                    part = rows.part
                    await conn.execute(
                        delete, [part.transfer_id, part.data_date, list(part.accounts)]
                    )
                    count = await self._copy(conn, schema, table, columns, part, rows.chunks)
                    results.append(LoadResult(count, f"{schema}.{table}"))
                if created:  # indexed once filled: cheaper than keeping it up row by row
                    await self._index(conn, schema, table)
        except psycopg.OperationalError as exc:
            raise DestinationUnreachable(
                "PostgreSQL failed during the load", _first_line(exc)
            ) from None
        except psycopg.Error as exc:
            raise LoadRejected("PostgreSQL refused the load", _first_line(exc)) from None
        finally:
            await conn.close()
        return results

    async def _prepare(self, conn: Any, schema: str, table: str, columns: Sequence[Column]) -> bool:
        """Lock the table's name, make or widen the table; whether it was made."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{schema}.{table}"])
        if (await (await conn.execute("SELECT to_regnamespace(%s)", [schema])).fetchone())[
            0
        ] is None:
            await conn.execute(_sql("CREATE SCHEMA IF NOT EXISTS {}", schema))
        found = await (
            await conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                [schema, table],
            )
        ).fetchall()
        if not found:
            await self._create(conn, schema, table, columns)
            return True
        existing = {name.lower(): KNOWN_TYPES.get(kind) for name, kind in found}
        for change in plan_changes(existing, columns):
            await conn.execute(_alter(schema, table, change))
        return False

    async def _create(self, conn: Any, schema: str, table: str, columns: Sequence[Column]) -> None:
        from psycopg import sql

        definitions = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(c.name),
                sql.SQL(PG_TYPES[c.type]),
                sql.SQL(" NOT NULL" if c.name.startswith("_qb_") else ""),
            )
            for c in all_columns(columns)
        ]
        await conn.execute(
            sql.SQL("CREATE TABLE {}.{} ({})").format(
                sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(definitions)
            )
        )

    async def _index(self, conn: Any, schema: str, table: str) -> None:
        from psycopg import sql

        await conn.execute(
            sql.SQL("CREATE INDEX {} ON {}.{} ({}, {}, {})").format(
                sql.Identifier(f"{table[:50]}_qb_slice"),
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.Identifier(TRANSFER_COLUMN),
                sql.Identifier(DATE_COLUMN),
                sql.Identifier(ACCOUNT_COLUMN),
            )
        )

    async def _copy(
        self,
        conn: Any,
        schema: str,
        table: str,
        columns: Sequence[Column],
        part: Slice,
        chunks: AsyncIterable[RowChunk],
    ) -> int:
        from psycopg import sql

        names = [TRANSFER_COLUMN, DATE_COLUMN, ACCOUNT_COLUMN, *(c.name for c in columns)]
        names.append(LOADED_COLUMN)
        statement = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
            sql.Identifier(schema),
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
        )
        accounts = frozenset(part.accounts)
        # The values every row shares go as the text COPY reads: dumping a date and an aware
        # datetime for each row cost more than the rest of the row.
        transfer_id, data_date = str(part.transfer_id), part.data_date.isoformat()
        loaded_at = datetime.now(UTC).isoformat()
        rows = 0
        async with conn.cursor() as cursor, cursor.copy(statement) as copy:
            async for chunk in chunks:
                check_chunk(chunk, accounts, len(columns))
                head = (transfer_id, data_date, chunk.account)
                for row in chunk.rows:
                    await copy.write_row((*head, *row, loaded_at))
                rows += len(chunk.rows)
        return rows


def _sql(template: str, *names: str) -> Any:
    from psycopg import sql

    return sql.SQL(template).format(*(sql.Identifier(n) for n in names))


def _alter(schema: str, table: str, change: Change) -> Any:
    from psycopg import sql

    kind = sql.SQL(PG_TYPES[change.column.type])
    target = (sql.Identifier(schema), sql.Identifier(table), sql.Identifier(change.column.name))
    if change.kind == "add":
        return sql.SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}").format(*target, kind)
    return sql.SQL("ALTER TABLE {}.{} ALTER COLUMN {} TYPE {} USING {}::{}").format(
        *target, kind, sql.Identifier(change.column.name), kind
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
