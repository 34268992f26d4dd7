"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from querybatch import __version__
from querybatch.api.auth import KeyCache
from querybatch.api.docs import install_docs
from querybatch.api.errors import install_error_handlers
from querybatch.api.links import Links
from querybatch.api.middleware import EdgeMiddleware
from querybatch.api.poll_budget import PollBudget
from querybatch.api.poll_lane import PollLane
from querybatch.api.prefixes import PrefixMount, flat_routes
from querybatch.api.pretty import PrettyJsonMiddleware
from querybatch.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from querybatch.api.routes import (
    admin,
    backfills,
    batches,
    bulk,
    cache,
    data,
    destinations,
    health,
    history,
    metrics,
    not_offered,
    sdk,
    sources,
    status,
    transfer_runs,
    transfers,
)
from querybatch.api.services import Services
from querybatch.console import CONSOLE_PATH, console_app, to_console
from querybatch.engine.factory import Announce, SourceRegistry, start_server
from querybatch.settings import Settings

log = logging.getLogger(__name__)

# Routes are tried in order, and each costs a little: the routers clients poll (status,
# batches) come first, then the rest.
API_ROUTERS: tuple[APIRouter, ...] = (
    status.router,
    batches.router,
    data.router,
    bulk.router,
    history.router,
    sources.router,
    cache.router,
    admin.router,
    destinations.router,
    transfers.router,
    transfer_runs.router,
    backfills.router,
    # Before sdk: /ds/login/links is not the login 'links' of /ds/login/{login_id}.
    not_offered.router,
    sdk.router,
)
PREFIXES = ("/v2", "/enterprise/v2")


def create_app(
    settings: Settings | None = None,
    *,
    sources: SourceRegistry | None = None,
    announce_key: Announce | None = None,
) -> FastAPI:
    """Build the app; the server node (store, data sources, engine) starts with its lifespan."""
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
        server = await start_server(
            settings, sources=sources, announce=announce_key or _log_new_key
        )
        app.state.services = Services(
            settings=settings,
            keys=KeyCache(server.access),
            limiter=limiter,
            links=Links(server.secret),
            bulk_batches=server.bulk_batches,
            uploads=server.uploads,
            access=server.access,
            catalog=server.catalog,
            operations=server.operations,
            queries=server.queries,
            query_batches=server.query_batches,
            poll_budget=PollBudget(settings.poll_share, server.engine.at_work),
            destinations=server.destinations,
            transfers=server.transfers,
            transfer_runs=server.transfer_runs,
            backfills=server.backfills,
        )
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's way, whose full passes over it are the longest pauses a request sees.
        gc.freeze()
        try:
            yield
        finally:
            await server.close()

    app = FastAPI(
        title="querybatch",
        version=__version__,
        description="Asynchronous batch query server, compatible with the Supermetrics Query API.",
        lifespan=lifespan,
        # Served by install_docs from the package's own copies of Swagger UI and ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(PrettyJsonMiddleware)
    app.state.limiter = limiter
    app.add_route(CONSOLE_PATH, to_console, methods=["GET"], include_in_schema=False)
    app.mount(CONSOLE_PATH, console_app(), name="console")
    # Held flat, not included: see .prefixes. No route's path starts with a prefix, so the
    # mounts, each one cheap test, go before the routes a prefixed request would walk past.
    api_routes = flat_routes(API_ROUTERS)
    app.router.routes.extend(flat_routes((health.router, metrics.router)))
    app.router.routes.extend(PrefixMount(prefix, api_routes) for prefix in PREFIXES)
    app.router.routes.extend(api_routes)
    install_docs(app)
    return app


def served(app: FastAPI) -> ASGIApp:
    """What the HTTP server serves: ``app`` inside the edge (request ids, rate-limit headers
    and CORS on every answer, errors and polls included) and the poll lane.

    Both sit outside the framework's own middleware: a poll is most of what a busy server
    answers, and that machinery cost more than the answer (see :mod:`.poll_lane`).
    """
    return EdgeMiddleware(PollLane(app), limiter=app.state.limiter)


def _log_new_key(secret: str) -> None:
    log.warning("created the first admin API key (shown once): %s", secret)
