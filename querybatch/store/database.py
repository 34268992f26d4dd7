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
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

from sqlalchemy import Connection, create_engine, event, inspect, make_url, text, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from querybatch import logs
from querybatch.cpu_meter import metered
from querybatch.errors import ConfigurationError, Conflict, StoreUnavailable
from querybatch.logs import redact
from querybatch.store.migrations import HEAD, VERSION_TABLE
from querybatch.store.private_files import PRIVATE_FILE, prepare_sqlite_file
from querybatch.store.tables import server_state

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# SQLite gives the pages of deleted rows back to the file system a slice at a time
# (UpkeepStore.return_space after expiry) only in this mode; a store made before it is
# converted at start while it is small, and by `querybatch compact` (a full VACUUM) after.
INCREMENTAL_VACUUM = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
CONVERT_AT_START_BYTES = 64 * 1024 * 1024
# After a checkpoint, the write-ahead log is cut back to this size: a burst of writes (a big
# batch, a slice of expiry) would otherwise leave the file at its largest for good.
WAL_SIZE_LIMIT = 64 * 1024 * 1024

CACHE_KIB = 16 * 1024
# The write-ahead log is copied back into the database (a checkpoint) by a thread of its own,
# beside the writer: done by the writer at every 1,000 pages (SQLite's default), it took a
# growing share of each write as the store grew (a tenth of its time at 200,000 sub-queries).
CHECKPOINT_SECONDS = 1.0
WRITER_CHECKPOINT_PAGES = 16_384  # 64 MB: the writer's own checkpoint, only as a backstop

SESSION_PREFIX = "querybatch "
LOCK_PING_SECONDS = 2.0  # how often a held PostgreSQL lock's session is used


def session_name() -> str:
    """This process's PostgreSQL application name: host and process id."""
    return f"{SESSION_PREFIX}{socket.gethostname()}:{os.getpid()}"[:63]


# The session holding an advisory lock of this schema, and how long it has been silent.
_LOCK_HOLDER = text(
    "SELECT a.application_name, "
    "EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float AS silent "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
    "AND l.classid::bigint = :id "
    "AND l.objid::bigint = (hashtext(current_schema())::bigint + 4294967296) % 4294967296 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND a.state = 'idle'"
)
_END_SESSIONS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE application_name = :name AND pid <> pg_backend_pid()"
)

# PostgreSQL advisory locks, as (kind, hash of the schema) pairs of 32-bit keys.
_MIGRATION_LOCK_ID = 0x51BA7C4  # serialises concurrent start-ups
_LOCK_IDS = {
    "node": 0x51BA7C5,  # held by the one embedded (in-process executor) server
    "scheduler": 0x51BA7C6,  # held by the node that schedules for a scale-out cluster
}


def _revision_of(conn: Connection) -> str | None:
    """The migration recorded in the database (Alembic's version table), None if none is."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return None if revision is None else str(revision)


def _upgrade(conn: Connection) -> None:
    """Run the migrations from where the database stands to the head, on ``conn``."""
    from alembic import command  # only a database behind the head needs Alembic
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "querybatch.store:migrations")
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def normalize_url(raw: str) -> URL:
    """Parse a database URL and pick our driver for plain ``postgresql://`` URLs."""
    try:
        url = make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError or ValueError here
        raise ConfigurationError(f"QB_DATABASE_URL is not a database URL: {redact(raw)!r}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"QB_DATABASE_URL: unsupported database {url.get_backend_name()!r} "
            "(use sqlite:///path or postgresql://...)"
        )
    return url


def shown_url(raw: str) -> str:
    """The database URL as it may be printed: the password hidden, the driver as given."""
    normalize_url(raw)  # a URL we cannot use is one clear ConfigurationError, here too
    return make_url(raw).render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL, in-memory and ``file:`` URIs."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


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

# The health check writes at most this often; a failed write is believed as long.
WRITE_CHECK_SECONDS = 5.0
# How long a health check waits for its write (a few ms when all is well) before answering
# with the last known result, so that a busy writer never slows /healthz down; and how long
# a write may stay unfinished before the store counts as unwritable (SQLite's busy timeout:
# by then every other write has failed too).
WRITE_CHECK_WAIT = 0.2
WRITE_STALL_SECONDS = 30.0
HEARTBEAT = "heartbeat"


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
        self._write_check: asyncio.Future[None] | None = None
        self._write_check_started = 0.0
        self._write_check_until = 0.0
        self._write_problem: str | None = None
        self._local = threading.local()
        self._point: Connection | None = None
        self._closing = threading.Event()
        self._lock_guard = threading.Lock()  # a lock's connection is used by one thread at once
        self._lock_pinger: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        if self.is_sqlite and sqlite_file(self.url) is not None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="qb-store-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            try:
                return create_engine(
                    self.url,
                    pool_size=12,
                    max_overflow=8,
                    pool_pre_ping=True,
                    # Which process a session is, so that a frozen one can be fenced off.
                    connect_args={"application_name": session_name()},
                )
            except ImportError as exc:  # a driver named in the URL (postgresql+pg8000://...)
                raise ConfigurationError(
                    f"QB_DATABASE_URL: no driver for {self.url.drivername} is installed ({exc})"
                ) from exc
        database = sqlite_file(self.url)
        if database is not None:
            try:
                prepare_sqlite_file(database)
            except OSError as exc:
                raise StoreUnavailable(
                    f"Cannot prepare the database file {database}", str(exc)
                ) from exc
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

    @contextlib.contextmanager
    def point_reading(self) -> Iterator[Connection]:
        """A connection for a read of a few rows by key (:meth:`read_point`).

        Called by a point read on the event loop of a SQLite server, it is one connection
        kept for them, used outside any explicit transaction: each statement reads the
        latest commit, and no snapshot is held between polls (which would keep the WAL from
        being checkpointed). Anywhere else it is :meth:`reading`.
        """
        if not getattr(self._local, "pointing", False):
            with self.reading() as conn:
                yield conn
            return
        if self._point is None:
            self._point = self.engine.connect().execution_options(qb_point=True)
        try:
            with translated_errors():
                yield self._point
        finally:
            self._point.rollback()  # ends SQLAlchemy's own bookkeeping; nothing was begun

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a reading store call on a reader thread."""
        loop = asyncio.get_running_loop()
        call = metered(functools.partial(fn, *args, **kwargs))
        return await loop.run_in_executor(self._reader, call)

    async def read_point(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call that reads a few rows by key: on SQLite right here, else on a
        reader thread.

        A SQLite lookup by key costs less than the hop to a reader thread and back, and a
        reader of a WAL database never waits for a writer; every other database is a
        network round trip away, which the event loop must not wait for.
        """
        if not self.is_sqlite:
            return await self.read(fn, *args, **kwargs)
        self._local.pointing = True
        try:
            return fn(*args, **kwargs)
        finally:
            self._local.pointing = False

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
        """Bring the schema to the newest migration (safe when several nodes start at once).

        A database already at :data:`~querybatch.store.migrations.HEAD` (every start but the
        first after an upgrade) is left as it is without loading Alembic, which costs a
        server, a worker or a CLI command about 0.2 s and 8 MB.
        """
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:id, hashtext(current_schema()))"),
                        {"id": _MIGRATION_LOCK_ID},
                    )
                if _revision_of(conn) != HEAD:
                    _upgrade(conn)
            if self.is_sqlite:
                self._convert_to_incremental_vacuum()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"Cannot prepare the database at {self.url.render_as_string(hide_password=True)}",
                str(exc).splitlines()[0][:2000],
            ) from exc

    def _convert_to_incremental_vacuum(self) -> None:
        """Let a SQLite store made before incremental vacuum give space back: converted now
        when small (a VACUUM takes about a second per 60 MB), otherwise said in the log."""
        with self._sqlite() as sqlite:
            if sqlite.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL_VACUUM:
                return
            path = sqlite_file(self.url)
            size = path.stat().st_size if path is not None and path.exists() else 0
            if size > CONVERT_AT_START_BYTES:
                logs.event(
                    log,
                    "store_not_compacting",
                    "the store ({size} bytes) was made before space of expired results was "
                    "given back to the disk; stop the server and run `querybatch compact` once",
                    level=logging.WARNING,
                    size=size,
                )
                return
            self._vacuum(sqlite)

    def compact(self) -> tuple[int, int]:
        """Rewrite a SQLite store without its free space (a full VACUUM), in the mode that
        gives space back from then on; its file's size (bytes) before and after. The caller
        makes sure no server uses it meanwhile."""
        if not self.is_sqlite:
            raise ConfigurationError(
                "compact is for the embedded SQLite store",
                "PostgreSQL gives space back by itself (autovacuum; see docs/deploy.md).",
            )
        path = sqlite_file(self.url)
        assert path is not None
        before = path.stat().st_size
        with self._sqlite() as sqlite:
            self._vacuum(sqlite)
            sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, path.stat().st_size

    @contextlib.contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection's own sqlite3 connection, outside any transaction (VACUUM
        and its pragmas cannot run in one), its errors the store's."""
        with self.engine.connect() as conn:
            sqlite = conn.connection.driver_connection
            assert isinstance(sqlite, sqlite3.Connection)
            try:
                yield sqlite
            except sqlite3.Error as exc:
                raise StoreUnavailable("The database is unavailable", str(exc)[:2000]) from exc

    @staticmethod
    def _vacuum(sqlite: sqlite3.Connection) -> None:
        sqlite.execute(f"PRAGMA auto_vacuum={INCREMENTAL_VACUUM}")
        sqlite.execute("VACUUM")

    def return_space(self, pages: int) -> int:
        """Give up to ``pages`` free pages of a SQLite store back to the file system (its
        file shrinks at the next checkpoint); how many free pages are left. Run it as a
        write. PostgreSQL's space is autovacuum's: 0."""
        if not self.is_sqlite:
            return 0
        with self._sqlite() as sqlite:
            if sqlite.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL_VACUUM:
                return 0
            # As a script: the pragma frees a page per step, and the driver steps a statement
            # without result columns only once.
            sqlite.executescript(f"PRAGMA incremental_vacuum({int(pages)})")
            return int(sqlite.execute("PRAGMA freelist_count").fetchone()[0])

    def _checkpoint_loop(self) -> None:
        """Copy the write-ahead log back into the database every CHECKPOINT_SECONDS, without
        waiting for the writer or readers (PASSIVE: what cannot be copied now is next time)."""
        while not self._closing.wait(CHECKPOINT_SECONDS):
            try:
                with self._sqlite() as sqlite:
                    sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (StoreUnavailable, SQLAlchemyError) as exc:
                log.debug("checkpoint skipped: %s", type(exc).__name__)

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
            handle = os.fdopen(
                os.open(f"{path}.{name}.lock", os.O_CREAT | os.O_RDWR | os.O_APPEND, PRIVATE_FILE),
                "a+",
            )
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
        if self._lock_pinger is None:
            self._lock_pinger = threading.Thread(
                target=self._ping_locks_forever, name="qb-store-lock-ping", daemon=True
            )
            self._lock_pinger.start()
        return True

    def _ping_locks_forever(self) -> None:
        """Use every held lock's session every LOCK_PING_SECONDS, from a thread of its own,
        so that a process that is alive, however busy its event loop, is never taken for a
        frozen one (:meth:`fence_silent_holder`)."""
        while not self._closing.wait(LOCK_PING_SECONDS):
            for name in list(self._locks):
                self.lock_alive(name)

    def fence_silent_holder(self, name: str, silent_seconds: float) -> str | None:
        """End every session of the named lock's holder if it has not used its lock session
        for ``silent_seconds``; the holder's session name then, else None.

        A holder that is alive uses it every few seconds (:meth:`lock_alive`); one that is
        frozen (SIGSTOP, a hung host) keeps its connection, and with it the lock, for as
        long as its kernel answers. Only PostgreSQL locks can be fenced; SQLite's are held
        by one machine.
        """
        if self.is_sqlite:
            return None
        with translated_errors(), self.engine.connect() as conn:
            holder = conn.execute(_LOCK_HOLDER, {"id": _LOCK_IDS[name]}).first()
            if holder is None or holder.silent < silent_seconds:
                return None
            if not str(holder.application_name).startswith(SESSION_PREFIX):
                return None  # not a querybatch process: not ours to end
            conn.execute(_END_SESSIONS, {"name": holder.application_name})
            conn.commit()
        return str(holder.application_name)

    def holds_lock(self, name: str) -> bool:
        """Whether this process held the named lock when it last looked (no round trip)."""
        return name in self._locks

    def lock_alive(self, name: str) -> bool:
        """Whether this process still holds the named lock (its connection may have died)."""
        held = self._locks.get(name)
        if held is None:
            return False
        if isinstance(held, Connection):
            with self._lock_guard:
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

    def revision(self) -> str | None:
        """The migration the database is at; None when it holds no querybatch schema yet."""
        try:
            with self.engine.connect() as conn:
                return _revision_of(conn)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(
                f"Cannot reach the database at {self.url.render_as_string(hide_password=True)}",
                str(exc).splitlines()[0][:2000],
            ) from exc

    def check_schema(self) -> None:
        """Raise StoreUnavailable unless the database answers and is migrated to our head."""
        current = self.revision()
        if current != HEAD:
            raise StoreUnavailable(
                "The database is not migrated for this version of querybatch",
                f"It is at revision {current}, this version needs {HEAD}: start `querybatch serve` "
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

    def heartbeat(self) -> None:
        """Write (and commit) one small row: the cheapest write that goes where others go."""
        value = repr(time.time())
        # Conflict: another node inserted the row first, which is a write that worked.
        with contextlib.suppress(Conflict), self.writing() as conn:
            written = conn.execute(
                update(server_state).where(server_state.c.name == HEARTBEAT).values(value=value)
            ).rowcount
            if not written:
                conn.execute(server_state.insert().values(name=HEARTBEAT, value=value))

    async def write_problem(self) -> str | None:
        """Why the store cannot take writes now, or None when it can.

        Checked with a real write (:meth:`heartbeat`) at most every WRITE_CHECK_SECONDS,
        so health checks put no pressure on the store. A write still under way after
        WRITE_CHECK_WAIT is not waited for: the last result stands unless the write has been
        stuck for WRITE_STALL_SECONDS.
        """
        now = time.monotonic()
        if self._write_check is None and now >= self._write_check_until:
            self._write_check = asyncio.ensure_future(self.write(self.heartbeat))
            self._write_check_started = now
            self._write_check.add_done_callback(self._record_write_check)
        check = self._write_check
        if check is not None:
            await asyncio.wait({check}, timeout=WRITE_CHECK_WAIT)
            stalled = time.monotonic() - self._write_check_started
            if not check.done() and stalled >= WRITE_STALL_SECONDS:
                return f"a write has not finished for {stalled:.0f} s"
        return self._write_problem

    def _record_write_check(self, check: asyncio.Future[None]) -> None:
        self._write_check = None
        self._write_check_until = time.monotonic() + WRITE_CHECK_SECONDS
        if not check.cancelled():
            problem = check.exception()
            self._write_problem = None if problem is None else _why(problem)

    def close(self) -> None:
        """Stop the threads, release the lock and close every pooled connection."""
        self._closing.set()
        for thread in (self._checkpointer, self._lock_pinger):
            if thread is not None:
                thread.join()
        for name in list(self._locks):
            self.release_lock(name)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        if self._point is not None:
            self._point.close()
        self.engine.dispose()


def _why(problem: BaseException) -> str:
    if isinstance(problem, StoreUnavailable):
        return (problem.description or problem.message)[:200]
    return type(problem).__name__


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so that the "begin" listener decides how transactions
    # start (pysqlite's own implicit BEGIN cannot be IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:  # a new store: made so
        cursor.execute(f"PRAGMA auto_vacuum={INCREMENTAL_VACUUM}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Pages of a store of a million sub-queries stay in the cache (16 MB) of the writer and
    # of the few reader connections, instead of being read back from the OS at every touch.
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    # Checkpoints are the checkpointer thread's; the writer takes one only if it falls behind.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
    cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    # Taking the write lock up front means a writer never fails half-way on SQLITE_BUSY when
    # another process (the CLI, a second server) writes at the same time. A point read's
    # single statements run in SQLite's own implicit transactions.
    options = conn.get_execution_options()
    if options.get("qb_point"):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("qb_write") else "BEGIN")
