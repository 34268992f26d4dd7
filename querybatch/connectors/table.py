"""What the ``sql`` and ``files`` connectors share: one table queried with SQLAlchemy Core.

A subclass says how to reach the table (an engine, a FROM clause and the column types); this
class lists fields and accounts, builds each sub-query as one grouped SELECT whose every value
is a bound parameter, and streams its rows in chunks from a worker thread so that neither the
event loop nor memory grows with the result.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.sql.selectable import FromClause

from querybatch.connectors.base import Connector, ConnectorConfig, FetchRequest
from querybatch.connectors.mapping import MappedFieldsConfig
from querybatch.connectors.sqlquery import Plan, Query, QueryBuilder, data_type_of
from querybatch.domain.fields import Account, FieldInfo, Login, Row
from querybatch.errors import (
    AccountErrors,
    ConfigurationError,
    ConnectorError,
    TransientConnectorError,
)

__all__ = ["TableConfig", "TableConnector", "data_type_of", "short_error", "wrap_error"]


class TableConfig(MappedFieldsConfig):
    """Settings of a source that is one table: which columns hold dates and accounts."""

    date_column: str
    account_column: str
    account_name_column: str | None = None
    chunk_rows: int = Field(5000, ge=1, le=100_000)
    max_connections: int = Field(4, ge=1, le=64)


class TableConnector(Connector):
    """A data source backed by one table, view or set of files, queried through SQLAlchemy."""

    pushdown: ClassVar[frozenset[str]] = frozenset({"filter", "order", "limit"})

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, TableConfig):
            raise ConfigurationError(f"sources.{ds_id}: expected table settings")
        super().__init__(ds_id, config)
        self.table_config = config
        self._engine: sa.Engine | None = None
        self._builder: QueryBuilder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(config.max_connections)
        self._opening = asyncio.Lock()

    def _here(self) -> tuple[asyncio.Semaphore, asyncio.Lock]:
        # asyncio primitives belong to one event loop; a worker may run several in turn.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.table_config.max_connections)
            self._opening = asyncio.Lock()
        return self._slots, self._opening

    # --- what subclasses provide ----------------------------------------------------

    @abstractmethod
    def create_engine(self) -> sa.Engine:
        """A SQLAlchemy engine for the source (raise ConfigurationError naming the key)."""

    @abstractmethod
    def describe(self, conn: sa.Connection) -> dict[str, sa.types.TypeEngine[Any]]:
        """Every column of the source and its type (raise ConfigurationError if it is gone)."""

    @abstractmethod
    def source(self, columns: Mapping[str, sa.types.TypeEngine[Any]]) -> FromClause:
        """The FROM clause holding ``columns``."""

    @property
    @abstractmethod
    def where(self) -> str:
        """How to name the source in messages (a table, a URL without password, a path)."""

    @property
    def connect_key(self) -> str:
        """The settings key to blame when the source cannot be reached."""
        return "url"

    # --- the connector contract -----------------------------------------------------

    async def open(self) -> None:
        """Connect and check the table and every configured column exist."""
        _, opening = self._here()
        async with opening:
            if self._builder is None:
                await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        engine = self.create_engine()
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise ConfigurationError(
                f"sources.{self.ds_id}.{self.connect_key}: cannot connect to {self.where}: "
                f"{short_error(exc)}"
            ) from exc
        try:
            with conn:
                columns = self.describe(conn)
                self._builder = QueryBuilder.for_source(
                    self.ds_id, self.table_config, columns, self.source, conn, self.where
                )
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise ConfigurationError(
                f"sources.{self.ds_id}: cannot read {self.where}: {short_error(exc)}"
            ) from exc
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine

    async def _ready(self) -> tuple[sa.Engine, QueryBuilder]:
        if self._builder is None or self._engine is None:
            await self.open()
        assert self._builder is not None and self._engine is not None
        return self._engine, self._builder

    async def fields(self) -> Sequence[FieldInfo]:
        """The configured dimensions and metrics, typed from the source's columns."""
        _, builder = await self._ready()
        return [f.info for f in builder.fields.values()]

    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        """One login holding every distinct account id (and name) of the table."""
        cfg = self.table_config
        login = cfg.login or self.ds_id
        if users and login.casefold() not in {u.casefold() for u in users}:
            return []
        engine, builder = await self._ready()
        stmt = builder.accounts_query()
        slots, _ = self._here()
        async with slots:
            rows = await asyncio.to_thread(self._all, engine, stmt)
        accounts = tuple(Account(str(r[0]), str(r[1] if r[1] is not None else r[0])) for r in rows)
        return [Login(login, cfg.display_name or self.ds_id, accounts)]

    def _all(self, engine: sa.Engine, stmt: Query) -> list[tuple[Any, ...]]:
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(stmt)]
        except sa.exc.SQLAlchemyError as exc:
            raise wrap_error(self.ds_id, exc) from exc

    async def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        """Yield the grouped rows of ``request`` in chunks of at most ``chunk_rows``."""
        engine, builder = await self._ready()
        plan = builder.plan(request)
        loop = asyncio.get_running_loop()
        slots, _ = self._here()
        async with slots:
            # One thread per fetch: a DB-API connection stays on the thread that used it.
            pool = ThreadPoolExecutor(1, thread_name_prefix=f"qb-{self.ds_id}")
            cursor = _Cursor(self.ds_id, engine, plan, self.table_config.chunk_rows)
            try:
                await loop.run_in_executor(pool, cursor.start)
                while chunk := await loop.run_in_executor(pool, cursor.next_chunk):
                    yield chunk
            finally:
                await asyncio.shield(loop.run_in_executor(pool, cursor.close))
                pool.shutdown(wait=False)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._engine is not None:
            engine, self._engine, self._builder = self._engine, None, None
            await asyncio.to_thread(engine.dispose)


class _Cursor:
    """The blocking side of one fetch, always called from the same worker thread."""

    def __init__(self, ds_id: str, engine: sa.Engine, plan: Plan, chunk_rows: int) -> None:
        self.ds_id = ds_id
        self.engine = engine
        self.plan = plan
        self.chunk_rows = chunk_rows
        self.conn: sa.Connection | None = None
        self.result: sa.CursorResult[Any] | None = None
        self.emitted = 0

    def start(self) -> None:
        try:
            self.conn = self.engine.connect()
            if self.plan.account_check is not None:
                found = {str(r[0]) for r in self.conn.execute(self.plan.account_check)}
                missing = [a for a in self.plan.accounts if a not in found]
                if missing:
                    why = f"account not found in data source {self.ds_id}"
                    raise AccountErrors(dict.fromkeys(missing, why))
            options = self.conn.execution_options(stream_results=True, yield_per=self.chunk_rows)
            self.result = options.execute(self.plan.statement)
        except sa.exc.SQLAlchemyError as exc:
            raise wrap_error(self.ds_id, exc) from exc

    def next_chunk(self) -> list[Row]:
        plan, result = self.plan, self.result
        assert result is not None
        convert, keep, limit = plan.convert, plan.keep, plan.limit
        chunk: list[Row] = []
        try:
            while not chunk:
                if limit is not None and self.emitted >= limit:
                    return []
                raw = result.fetchmany(self.chunk_rows)
                if not raw:
                    return []
                rows = [convert(r) for r in raw]
                chunk = rows if keep is None else [r for r in rows if keep(r)]
        except sa.exc.SQLAlchemyError as exc:
            raise wrap_error(self.ds_id, exc) from exc
        if limit is not None:
            chunk = chunk[: limit - self.emitted]
        self.emitted += len(chunk)
        return chunk

    def close(self) -> None:
        if self.result is not None:
            self.result.close()
        if self.conn is not None:
            self.conn.close()


def short_error(exc: BaseException) -> str:
    """The first line of a driver's message, without the SQL and parameters SQLAlchemy adds."""
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip().splitlines()
    first = text[0] if text else type(origin).__name__
    return first[:300]


def wrap_error(ds_id: str, exc: sa.exc.SQLAlchemyError) -> ConnectorError:
    """A driver error as a connector error: lost connections and timeouts are transient."""
    message = f"data source {ds_id}: {short_error(exc)}"
    transient = isinstance(exc, sa.exc.OperationalError | sa.exc.TimeoutError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )
    return TransientConnectorError(message) if transient else ConnectorError(message)
