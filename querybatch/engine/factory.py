"""A server node built from its settings: store, data sources, executor, engine, bulk runner.

The API's lifespan and the CLI's commands build what they need here and nowhere else, and
this is the one place that reads which executor the settings ask for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from querybatch import logs
from querybatch.connectors.registry import SourceRegistry as SourceRegistry
from querybatch.engine.access import Access
from querybatch.engine.executors.base import Executor
from querybatch.errors import ConfigurationError
from querybatch.extras import require
from querybatch.settings import Settings
from querybatch.store.database import Database, normalize_url, shown_url, sqlite_file
from querybatch.store.private_files import secure_directory
from querybatch.store.store import Store

# The key commands open only the store: the rest of a server node is imported when one is
# built, so that ``querybatch keys ...`` starts as fast as the store allows.
if TYPE_CHECKING:
    from querybatch.destinations.base import Destination
    from querybatch.engine.backfills import Backfills
    from querybatch.engine.bulk import BulkRunner
    from querybatch.engine.bulk_batches import BulkBatches
    from querybatch.engine.catalog import Catalog
    from querybatch.engine.destinations import Destinations
    from querybatch.engine.operations import Operations
    from querybatch.engine.queries import Queries
    from querybatch.engine.query_batches import QueryBatches
    from querybatch.engine.service import Engine
    from querybatch.engine.transfer_runs import TransferRuns
    from querybatch.engine.transfers import Transfers
    from querybatch.engine.uploads import Uploads

Announce = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Server:
    """One running server node: what the API hands its routes, closed when it stops."""

    settings: Settings
    store: Store
    sources: SourceRegistry
    engine: Engine
    bulk: BulkRunner
    secret: bytes
    access: Access
    catalog: Catalog
    operations: Operations
    bulk_batches: BulkBatches
    uploads: Uploads
    queries: Queries
    query_batches: QueryBatches
    destinations: Destinations
    transfers: Transfers
    transfer_runs: TransferRuns
    backfills: Backfills

    async def close(self) -> None:
        """Stop the bulk pipelines and the engine, then close the data sources and the store."""
        await self.bulk.stop()
        await self.engine.stop()
        await self.sources.close()
        self.store.close()
        logs.event(log, "server_stopped", "server stopped")


async def start_server(
    settings: Settings, *, sources: SourceRegistry | None = None, announce: Announce
) -> Server:
    """Open the store and the data sources, and start the engine and the bulk runner.

    ``sources`` replaces the data sources of the settings (tests bring their own);
    ``announce`` is told the secret of an admin key created on the first start.
    """
    from querybatch.connectors.sources import build_sources
    from querybatch.destinations.registry import destination_types
    from querybatch.engine.backfills import Backfills
    from querybatch.engine.bulk import BulkRunner
    from querybatch.engine.bulk_batches import BulkBatches
    from querybatch.engine.catalog import Catalog
    from querybatch.engine.operations import Operations
    from querybatch.engine.queries import Queries
    from querybatch.engine.query_batches import QueryBatches
    from querybatch.engine.service import Engine
    from querybatch.engine.transfer_runner import TransferRunner
    from querybatch.engine.transfer_runs import TransferRuns
    from querybatch.engine.transfers import Transfers
    from querybatch.engine.uploads import Uploads

    store = open_store(settings)
    registry = sources or build_sources(settings)
    try:
        bootstrap_keys(store, settings, announce)
        destination_kinds = destination_types()  # a broken plugin stops the start here
        await registry.open()
        engine = Engine(settings, store, registry, build_executor(settings, store, registry))
        await engine.start()
        secret = await store.keys.server_secret(settings.secret)
        queries = Queries(engine)
        query_batches = QueryBatches(engine)
        bulk = BulkRunner(engine, query_batches)
        await bulk.start()
    except BaseException:
        store.close()
        raise
    logs.event(
        log,
        "server_started",
        "server started: store {store}, executor {executor}",
        store=logs.redact(settings.resolved_database_url),
        executor=settings.executor,
    )
    catalog = Catalog(registry)
    destinations = build_destinations(settings, store, secret, destination_kinds)
    transfers = Transfers(store, catalog, destinations, limit=settings.max_transfers)
    runner = TransferRunner(
        store, query_batches, transfers, destinations, wake=engine.scheduler.wake
    )
    engine.use_transfer_runs(runner)
    return Server(
        settings,
        store,
        registry,
        engine,
        bulk,
        secret,
        access=Access(store),
        catalog=catalog,
        operations=Operations(store, engine),
        bulk_batches=BulkBatches(store, bulk),
        uploads=Uploads(store, settings),
        queries=queries,
        query_batches=query_batches,
        destinations=destinations,
        transfers=transfers,
        transfer_runs=TransferRuns(store, transfers, engine.batch_storing),
        backfills=Backfills(store, created=runner.poke),
    )


def build_destinations(
    settings: Settings, store: Store, secret: bytes, kinds: Mapping[str, type[Destination]]
) -> Destinations:
    """The destinations service: the installed ``kinds``, secrets sealed with the server secret."""
    from querybatch.engine.destination_targets import DestinationTargets, parse_allow
    from querybatch.engine.destinations import Destinations
    from querybatch.engine.secret_box import SecretBox

    targets = DestinationTargets(
        parse_allow(settings.destination_allow), settings.destination_allow_internal
    )
    return Destinations(
        store,
        kinds,
        SecretBox(secret),
        settings.destinations_dir or settings.data_dir / "destinations",
        limit=settings.max_destinations,
        targets=targets,
    )


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store the settings name, migrated to the current schema unless told not to."""
    return Store.open(
        settings.resolved_database_url, result_ttl=settings.result_ttl, migrate=migrate
    )


class NoStore(ConfigurationError):
    """The settings name a store that does not exist yet (or holds no querybatch schema)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"No querybatch store at {url}")
        self.url = url


def store_url(settings: Settings) -> str:
    """The URL of the settings' store as it may be shown: its password hidden."""
    return shown_url(settings.resolved_database_url)


def store_exists(settings: Settings) -> bool:
    """Whether the settings' store exists and holds a querybatch schema; creates nothing.

    A missing SQLite file is not opened at all, since opening would create it.
    """
    url = settings.resolved_database_url
    path = sqlite_file(normalize_url(url))
    if path is not None and not path.is_file():
        return False
    database = Database(url)
    try:
        return database.revision() is not None
    finally:
        database.close()


def compact_store(settings: Settings) -> tuple[int, int]:
    """Rewrite the settings' SQLite store without its free space; its size before and after.

    Refused while a server runs on it (the store's node lock), and for a store that does not
    exist yet (it would be created empty).
    """
    if not store_exists(settings):
        raise NoStore(store_url(settings))
    database = Database(settings.resolved_database_url)
    try:
        if not database.try_lock("node"):
            raise ConfigurationError(
                f"A querybatch server runs on {store_url(settings)}",
                "Stop it first: compacting rewrites the whole store.",
            )
        return database.compact()
    finally:
        database.close()


def open_access(settings: Settings, *, create: bool = False) -> Access:
    """Keys and roles in the server's store, for one CLI command; ``close`` it afterwards.

    The store must exist already (a command pointed at the wrong place would otherwise make a
    new, empty one and its keys would never reach the server): NoStore says so. ``create``
    creates and migrates it as the server's first start would.
    """
    check_extras(settings)
    if not create and not store_exists(settings):
        raise NoStore(store_url(settings))
    if create and not settings.database_url:
        secure_directory(settings.data_dir)  # as the server does: the directory is ours
    store = open_store(settings)
    try:
        store.keys.ensure_builtin_roles.blocking(time.time())
    except BaseException:
        store.close()
        raise
    return Access(store, owns_store=True)


def bootstrap_keys(store: Store, settings: Settings, announce: Announce) -> None:
    """Create the built-in roles and an admin key (QB_ADMIN_KEY, or a new one on first start)."""
    now = time.time()
    store.keys.ensure_builtin_roles.blocking(now)
    if settings.admin_key:
        store.keys.ensure_key.blocking(
            settings.admin_key, "admin (QB_ADMIN_KEY)", "admin", "default", now
        )
    elif store.keys.count_active.blocking() == 0:
        _, secret = store.keys.create_key.blocking("admin", "admin", "default", now)
        announce(secret)


def executor_class(settings: Settings) -> type[Executor]:
    """The kind of executor the settings ask for (Celery is imported only when asked for)."""
    if settings.executor == "celery":
        from querybatch.engine.executors.celery import CeleryExecutor

        return CeleryExecutor
    from querybatch.engine.executors.local import LocalExecutor

    return LocalExecutor


def build_executor(settings: Settings, store: Store, sources: SourceRegistry) -> Executor:
    """The executor of this node, as the settings ask for it."""
    if settings.executor == "celery":
        from querybatch.engine.executors.celery import CeleryExecutor

        return CeleryExecutor(settings, store)
    from querybatch.engine.executors.local import build_local_executor

    return build_local_executor(settings, store, sources, settings.workers)


def check_server(settings: Settings) -> None:
    """Get ready to serve, or fail with one clear error rather than a traceback from inside.

    The data directory is made private, the store opened (and migrated), the executor's
    needs checked (the store's node lock, or the broker), and every data source opened once.
    """
    check_extras(settings)
    if not settings.database_url:
        # The data directory is querybatch's own: only this user may enter it.
        secure_directory(settings.data_dir)
    store = open_store(settings)
    try:
        executor_class(settings).preflight(settings, store)
    finally:
        store.close()
    check_sources(settings)


def check_worker(settings: Settings) -> None:
    """Fail with one clear error unless the broker answers and the store is migrated."""
    check_extras(settings, worker=True)
    from querybatch.engine.executors.celery import check_broker

    check_broker(settings)
    store = open_store(settings, migrate=False)
    try:
        store.db.check_schema()
    finally:
        store.close()


def check_sources(settings: Settings) -> list[str]:
    """The ids of the data sources the settings give, each built and opened once, with its
    errors (what ``check_server`` runs last); the store is not touched and no port bound."""
    from querybatch.connectors.sources import build_sources

    registry = build_sources(settings)
    asyncio.run(_open_and_close(registry))
    return sorted(registry)


def check_extras(settings: Settings, *, worker: bool = False) -> None:
    """Fail with one line naming the ``pip install`` when a setting needs a missing extra.

    Checked before the store, the executor or the rate limiter import their drivers; a
    ``worker`` always needs Celery. Data sources check their own needs when they are built.
    """
    if normalize_url(settings.resolved_database_url).drivername == "postgresql+psycopg":
        require("QB_DATABASE_URL is a PostgreSQL URL", "psycopg")
    if worker:
        require("querybatch worker runs Celery tasks", "celery", "redis")
    elif settings.executor == "celery":
        require("QB_EXECUTOR is celery", "celery", "redis")
    if settings.shared_redis_url:
        variable = "QB_REDIS_URL" if settings.redis_url else "QB_BROKER_URL"
        require(f"{variable} is a Redis URL", "redis")


async def _open_and_close(sources: SourceRegistry) -> None:
    try:
        await sources.open()
    finally:
        await sources.close()
