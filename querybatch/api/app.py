"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from querybatch import __version__
from querybatch.api.auth import KeyCache
from querybatch.api.errors import install_error_handlers
from querybatch.api.links import Links
from querybatch.api.middleware import EdgeMiddleware
from querybatch.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from querybatch.api.routes import (
    admin,
    batches,
    bulk,
    cache,
    data,
    health,
    metrics,
    sources,
    status,
)
from querybatch.api.services import Services
from querybatch.connectors.registry import SourceRegistry
from querybatch.connectors.sources import build_sources
from querybatch.engine.bulk import BulkRunner
from querybatch.engine.queries import Queries
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.service import Engine
from querybatch.settings import Settings
from querybatch.store.store import Store

log = logging.getLogger(__name__)

API_ROUTERS: tuple[APIRouter, ...] = (
    data.router,
    status.router,
    sources.router,
    batches.router,
    cache.router,
    bulk.router,
    admin.router,
)
PREFIXES = ("/v2", "/enterprise/v2")

Announce = Callable[[str], None]


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


def create_app(
    settings: Settings | None = None,
    *,
    sources: SourceRegistry | None = None,
    announce_key: Announce | None = None,
) -> FastAPI:
    """Build the app; the store, the data sources and the engine start with its lifespan."""
    settings = settings or Settings()
    limiter: RateLimiter = (
        RedisRateLimiter(
            settings.rate_limit, settings.shared_redis_url, f"{settings.celery_queue}:rl"
        )
        if settings.shared_redis_url
        else MemoryRateLimiter(settings.rate_limit)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store.open(settings.resolved_database_url, result_ttl=settings.result_ttl)
        registry = sources or build_sources(settings)
        try:
            bootstrap_keys(store, settings, announce_key or _log_new_key)
            await registry.open()
            engine = Engine(settings, store, registry)
            await engine.start()
            queries = Queries(engine)
            query_batches = QueryBatches(engine)
            secret = await store.keys.server_secret(settings.secret)
            bulk_runner = BulkRunner(engine, query_batches)
            await bulk_runner.start()
        except BaseException:
            store.close()
            raise
        app.state.services = Services(
            settings=settings,
            store=store,
            sources=registry,
            engine=engine,
            keys=KeyCache(store),
            limiter=limiter,
            links=Links(secret),
            bulk=bulk_runner,
            queries=queries,
            query_batches=query_batches,
        )
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's way, whose full passes over it are the longest pauses a request sees.
        gc.freeze()
        try:
            yield
        finally:
            await bulk_runner.stop()
            await engine.stop()
            await registry.close()
            store.close()

    app = FastAPI(
        title="querybatch",
        version=__version__,
        description="Asynchronous batch query server, compatible with the Supermetrics Query API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, limiter=limiter)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in API_ROUTERS:
        app.include_router(router)
        for prefix in PREFIXES:
            app.include_router(router, prefix=prefix, include_in_schema=False)
    return app


def _log_new_key(secret: str) -> None:
    log.warning("created the first admin API key (shown once): %s", secret)
