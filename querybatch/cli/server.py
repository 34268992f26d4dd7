"""``querybatch serve`` (and later ``worker``): run the server processes."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from querybatch import __version__, logs
from querybatch.cli.common import app, console, settings_with
from querybatch.errors import ConfigurationError, ServiceUnavailable
from querybatch.settings import Settings


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (QB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (QB_PORT).")] = None,
    sources: Annotated[
        Path | None, typer.Option(help="Data-source file, TOML or YAML (QB_SOURCES).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the API server (and, on the embedded default, its workers)."""
    import uvicorn

    from querybatch.api.app import create_app
    from querybatch.connectors.sources import build_sources
    from querybatch.store.private_files import secure_directory
    from querybatch.store.store import Store

    logs.install()
    settings = settings_with(host=host, port=port, sources=sources)
    if not settings.database_url:
        # The data directory is querybatch's own: only this user may enter it.
        secure_directory(settings.data_dir)
    # Check the store and every data source before listening, so that a mistake is one clear
    # line and an exit code rather than a traceback from inside the server.
    store = Store.open(settings.resolved_database_url, result_ttl=settings.result_ttl)
    try:
        if settings.executor == "local":
            store.db.hold_exclusive_lock()
    finally:
        store.close()
    if settings.executor == "celery":
        check_broker(settings)
    registry = build_sources(settings)
    asyncio.run(_check_sources(registry))

    def announce(secret: str) -> None:
        console.print("[bold]First start: created an admin API key (shown only once):[/bold]")
        console.print(secret, markup=False, highlight=False, soft_wrap=True)

    # Request latency tails: the event loop shares the GIL with the store threads (shorter
    # turns than the default 5 ms), and the cyclic collector's young-generation passes were
    # the main source of pauses at the default threshold of 700 allocations (measured with
    # bench.api: status p99 from about 100 ms to under 50 ms).
    sys.setswitchinterval(0.001)
    gc.set_threshold(100_000, 50, 100)
    application = create_app(settings, announce_key=announce)
    console.print(
        f"querybatch {__version__} on http://{settings.host}:{settings.port}", highlight=False
    )
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=log_level)


async def _check_sources(registry: Any) -> None:
    try:
        await registry.open()
    finally:
        await registry.close()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes (each runs chunks).")] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    log_level: Annotated[str, typer.Option(help="Celery log level.")] = "warning",
) -> None:
    """Run sub-queries handed out by the servers (QB_EXECUTOR=celery, QB_BROKER_URL)."""
    from querybatch.engine.executors.celery import make_celery
    from querybatch.store.store import Store

    logs.install()
    settings = settings_with()
    check_broker(settings)
    store = Store.open(
        settings.resolved_database_url, result_ttl=settings.result_ttl, migrate=False
    )
    try:
        store.db.check_schema()
    finally:
        store.close()
    celery = make_celery(settings)
    console.print(
        f"querybatch worker on queue {settings.celery_queue}, {concurrency} {pool} processes",
        highlight=False,
    )
    celery.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--queues={settings.celery_queue}",
            f"--loglevel={log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def check_broker(settings: Settings) -> None:
    """Fail with one clear line when the broker is not set, not Redis, or unreachable."""
    import redis

    url = settings.broker_url
    if not url:
        raise ConfigurationError(
            "QB_BROKER_URL is not set",
            "QB_EXECUTOR=celery needs a broker, e.g. redis://host:6379/0.",
        )
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigurationError(
            f"QB_BROKER_URL must be a redis:// URL, not {url.split(':', 1)[0]}://",
            "querybatch uses Redis as its broker and for its shared rate limits.",
        )
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            f"Cannot reach the broker at {logs.redact(url)}", str(exc)
        ) from exc
