"""The database: connections, SQLite tuning, migrations and the threads store calls run on.

Store calls are synchronous SQLAlchemy Core. The asyncio side (API, engine) runs them on two
thread pools: reads on several threads, writes on one for SQLite (it has a single writer
anyway, and one thread avoids lock contention) and a few for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event, make_url, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from querybatch.errors import ConfigurationError, Conflict, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# PostgreSQL advisory locks, as (kind, hash of the schema) pairs of 32-bit keys.
_MIGRATION_LOCK_ID = 0x51BA7C4  # serialises concurrent start-ups
_LOCK_IDS = {
    "node": 0x51BA7C5,  # held by the one embedded (in-process executor) server
    "scheduler": 0x51BA7C6,  # held by the node that schedules for a scale-out cluster
}


def normalize_url(raw: str) -> URL:
    """Parse a database URL and pick our driver for plain ``postgresql://`` URLs."""
    try:
        url = make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError or ValueError here
        raise ConfigurationError(f"QB_DATABASE_URL is not a database URL: {raw!r}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"QB_DATABASE_URL: unsupported database {url.get_backend_name()!r} "
            "(use sqlite:///path or postgresql://...)"
        )
    return url


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn driver errors into ours, once, at the adapter: a broken unique rule is a Conflict."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("The object exists already", str(exc.orig).splitlines()[0][:2000]) from exc
    except DBAPIError as exc:
        detail = str(exc.orig).splitlines()[0][:2000]
        if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            raise StoreConflict("The database asked to retry the transaction", detail) from exc
        raise StoreUnavailable("The database is unavailable", detail) from exc


class StoreConflict(StoreUnavailable):
    """A transaction lost a deadlock or serialization race; running it again is safe."""


# deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 4


class Database:
    """A connection pool plus the threads store calls run on."""

    def __init__(self, url: str, *, read_threads: int = 8) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine()
        write_threads = 1 if self.is_sqlite else 4
        self._writer = ThreadPoolExecutor(write_threads, thread_name_prefix="qb-store-write")
        self._reader = ThreadPoolExecutor(read_threads, thread_name_prefix="qb-store-read")
        self._locks: dict[str, IO[str] | Connection] = {}

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_size=12, max_overflow=8, pool_pre_ping=True)
        database = self.url.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=12
        )
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        with translated_errors(), self.engine.connect() as conn:
            conn = conn.execution_options(qb_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot."""
        with translated_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a reading store call on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, functools.partial(fn, *args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a writing store call on a writer thread, again if it lost a deadlock."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return await loop.run_in_executor(self._writer, call)
            except StoreConflict:
                if attempt == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe when several nodes start at once)."""
        config = Config()
        config.set_main_option("script_location", "querybatch.store:migrations")
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id, hashtext(current_schema()))"),
                        {"id": _MIGRATION_LOCK_ID},
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"Cannot prepare the database at {self.url.render_as_string(hide_password=True)}",
                str(exc).splitlines()[0][:2000],
            ) from exc

    def hold_exclusive_lock(self) -> None:
        """Make this process the only one running sub-queries in-process on this database.

        An embedded server re-runs every claimed sub-query when it starts, which is only
        right if no other server is running them; a second one on the same database stops
        here with a clear error. The lock lives as long as this Database.
        """
        if not self.try_lock("node"):
            raise ConfigurationError(
                f"Another querybatch server runs sub-queries in-process on "
                f"{self.url.render_as_string(hide_password=True)}",
                "Stop it, or run several nodes with QB_EXECUTOR=celery.",
            )

    def try_lock(self, name: str) -> bool:
        """Take the named process-wide lock if free (it is held until released or closed).

        SQLite uses a lock file beside the database; PostgreSQL a session advisory lock on a
        connection of its own, so a crashed holder's lock goes with its connection. The lock
        is per schema: deployments sharing a database in different schemas do not meet.
        """
        if name in self._locks:
            return self.lock_alive(name)
        if self.is_sqlite:
            path = Path(self.url.database or "querybatch.db").expanduser()
            handle = open(f"{path}.{name}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._locks[name] = handle
            return True
        with translated_errors():
            conn = self.engine.connect()
            locked = conn.execute(
                text("SELECT pg_try_advisory_lock(:id, hashtext(current_schema()))"),
                {"id": _LOCK_IDS[name]},
            ).scalar()
            conn.commit()
        if not locked:
            conn.close()
            return False
        self._locks[name] = conn
        return True

    def lock_alive(self, name: str) -> bool:
        """Whether this process still holds the named lock (its connection may have died)."""
        held = self._locks.get(name)
        if held is None:
            return False
        if isinstance(held, Connection):
            try:
                held.execute(text("SELECT 1"))
                held.commit()
            except SQLAlchemyError:
                self.release_lock(name)
                return False
        return True

    def release_lock(self, name: str) -> None:
        """Let the named lock go."""
        held = self._locks.pop(name, None)
        if held is not None:
            try:
                held.close()
            except SQLAlchemyError:
                pass

    def check_schema(self) -> None:
        """Raise StoreUnavailable unless the database answers and is migrated to our head."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", "querybatch.store:migrations")
        head = ScriptDirectory.from_config(config).get_current_head()
        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"Cannot reach the database at {self.url.render_as_string(hide_password=True)}",
                str(exc).splitlines()[0][:2000],
            ) from exc
        if current != head:
            raise StoreUnavailable(
                "The database is not migrated for this version of querybatch",
                f"It is at revision {current}, this version needs {head}: start `querybatch serve` "
                "once, it migrates the database.",
            )

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        """Stop the threads, release the lock and close every pooled connection."""
        for name in list(self._locks):
            self.release_lock(name)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self.engine.dispose()


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so that the "begin" listener decides how transactions
    # start (pysqlite's own implicit BEGIN cannot be IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    # Taking the write lock up front means a writer never fails half-way on SQLITE_BUSY when
    # another process (the CLI, a second server) writes at the same time.
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("qb_write") else "BEGIN"
    )
