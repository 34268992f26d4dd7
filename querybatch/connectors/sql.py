"""The ``sql`` connector: one table or view of any database SQLAlchemy can reach.

Tested on SQLite and PostgreSQL; DuckDB files work through ``duckdb_engine`` (installed with
``querybatch[files]``), and MySQL/MariaDB with a driver such as ``pymysql``. Filters, row
order and row limits are pushed down into the SELECT; see :mod:`querybatch.connectors.table`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import ConfigDict, Field
from sqlalchemy.engine import make_url
from sqlalchemy.sql.selectable import FromClause

from querybatch.connectors.base import ConnectorConfig
from querybatch.connectors.sqlquery import CASEFOLD_FUNCTION, needed_columns
from querybatch.connectors.table import TableConfig, TableConnector, short_error
from querybatch.domain.filters import pattern_search
from querybatch.errors import ConfigurationError
from querybatch.extras import require

__all__ = ["SqlConfig", "SqlConnector"]

Types = dict[str, sa.types.TypeEngine[Any]]


class SqlConfig(TableConfig):
    """Settings of one ``sql`` source: the database URL and the table or view to read."""

    model_config = ConfigDict(populate_by_name=True)

    url: str
    table: str
    db_schema: str | None = Field(None, alias="schema")


def _casefold(value: object) -> str | None:
    return None if value is None else str(value).casefold()


def _regexp(pattern: str, value: object) -> bool | None:
    """SQLite's ``pattern REGEXP value`` with RE2, as the engine's filters match.

    SQLAlchemy registers a ``regexp`` that calls Python's backtracking ``re``, which a
    tenant's pattern can keep busy for hours; this one replaces it. Patterns are checked
    when the query is planned, so an invalid one never gets here.
    """
    if value is None:
        return None
    return pattern_search(pattern)(str(value)) is not None


class SqlConnector(TableConnector):
    """A table or view of a SQL database, grouped and aggregated by the database."""

    config_model: ClassVar[type[ConnectorConfig]] = SqlConfig

    def __init__(self, ds_id: str, config: ConnectorConfig) -> None:
        if not isinstance(config, SqlConfig):
            raise ConfigurationError(f"sources.{ds_id}: expected sql settings")
        super().__init__(ds_id, config)
        self.sql_config = config
        try:
            url = make_url(config.url)
        except sa.exc.ArgumentError:
            raise ConfigurationError(
                f"sources.{ds_id}.url: not a database URL (e.g. sqlite:////var/data/shop.db)"
            ) from None
        if url.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
            # Plain postgresql:// means psycopg2 to SQLAlchemy; querybatch ships psycopg 3.
            url = url.set(drivername="postgresql+psycopg")
        # Names only: asking the URL for its driver would load a dialect that may be missing.
        if url.drivername == "postgresql+psycopg":
            require(f"sources.{ds_id}.url is a PostgreSQL URL", "psycopg")
        elif url.get_backend_name() == "duckdb":
            require(f"sources.{ds_id}.url is a DuckDB URL", "duckdb", "duckdb_engine")
        self.url = url

    @property
    def where(self) -> str:
        """The table and the URL, its password hidden."""
        return f"table {self.sql_config.table!r} of {self.url.render_as_string(True)}"

    def create_engine(self) -> sa.Engine:
        """An engine whose pool holds as many connections as fetches may run at once."""
        url, cfg = self.url, self.sql_config
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            if not url.database.startswith("file:") and not Path(url.database).exists():
                raise ConfigurationError(
                    f"sources.{self.ds_id}.url: database file {url.database} does not exist"
                )
        try:
            engine = sa.create_engine(
                url, pool_size=cfg.max_connections, max_overflow=0, pool_pre_ping=True
            )
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"sources.{self.ds_id}.url: no driver for {url.drivername} is installed "
                f"({short_error(exc)})"
            ) from exc
        except (sa.exc.ArgumentError, TypeError) as exc:
            raise ConfigurationError(f"sources.{self.ds_id}.url: {short_error(exc)}") from exc
        if engine.dialect.name == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _register(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.create_function(
                    CASEFOLD_FUNCTION, 1, _casefold, deterministic=True
                )
                # Runs after the dialect's own connect hook, so this regexp is the one used.
                dbapi_connection.create_function("regexp", 2, _regexp, deterministic=True)

        return engine

    def describe(self, conn: sa.Connection) -> Types:
        """The table's columns by reflection, or by probing where reflection fails."""
        cfg = self.sql_config
        try:
            reflected = sa.inspect(conn).get_columns(cfg.table, schema=cfg.db_schema)
        except sa.exc.NoSuchTableError:
            raise self._no_table() from None
        except (sa.exc.SQLAlchemyError, NotImplementedError):
            # Some dialects (duckdb_engine on SQLAlchemy 2.1) cannot reflect; ask the table.
            conn.rollback()
            return self._probe(conn)
        return {column["name"]: column["type"] for column in reflected}

    def _no_table(self) -> ConfigurationError:
        cfg = self.sql_config
        schema = f" in schema {cfg.db_schema!r}" if cfg.db_schema else ""
        return ConfigurationError(
            f"sources.{self.ds_id}.table: table or view {cfg.table!r}{schema} does not exist "
            f"in {self.url.render_as_string(True)}"
        )

    def _probe(self, conn: sa.Connection) -> Types:
        cfg = self.sql_config
        table = sa.table(cfg.table, schema=cfg.db_schema)
        try:
            conn.execute(sa.select(sa.literal(1)).select_from(table).limit(0))
        except sa.exc.SQLAlchemyError:
            conn.rollback()
            raise self._no_table() from None
        found: Types = {}
        for column, _ in needed_columns(cfg):
            try:
                conn.execute(sa.select(sa.column(column)).select_from(table).limit(0))
            except sa.exc.SQLAlchemyError:
                conn.rollback()
                continue
            found[column] = sa.types.NullType()
        return found

    def source(self, columns: Mapping[str, sa.types.TypeEngine[Any]]) -> FromClause:
        """The table with the columns the source uses."""
        cfg = self.sql_config
        return sa.table(
            cfg.table, *(sa.column(n, t) for n, t in columns.items()), schema=cfg.db_schema
        )
