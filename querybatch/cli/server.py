"""``querybatch serve`` (and later ``worker``): run the server processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from querybatch import __version__
from querybatch.cli.common import app, console, settings_with


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
    from querybatch.store.store import Store

    settings = settings_with(host=host, port=port, sources=sources)
    # Check the store and every data source before listening, so that a mistake is one clear
    # line and an exit code rather than a traceback from inside the server.
    store = Store.open(settings.resolved_database_url, result_ttl=settings.result_ttl)
    try:
        if settings.executor == "local":
            store.db.hold_exclusive_lock()
    finally:
        store.close()
    registry = build_sources(settings)
    asyncio.run(_check_sources(registry))

    def announce(secret: str) -> None:
        console.print("[bold]First start: created an admin API key (shown only once):[/bold]")
        console.print(secret, markup=False, highlight=False, soft_wrap=True)

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
