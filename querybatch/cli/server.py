"""``querybatch serve`` (and later ``worker``): run the server processes."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from querybatch import __version__, logs
from querybatch.cli.common import app, console, fail, settings_with
from querybatch.errors import ConfigurationError


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
    _arrow_allocator()
    import uvicorn

    from querybatch.api.app import create_app, served
    from querybatch.engine.factory import check_server

    settings = settings_with(host=host, port=port, sources=sources)
    logs.install(settings.log_format, log_level)
    # Check the store, the executor's needs and every data source before listening, so that
    # a mistake is one clear line and an exit code rather than a traceback from the server.
    check_server(settings)

    def announce(secret: str) -> None:
        console.print("First start: created an admin API key (shown only once):", style="bold")
        console.print(secret, soft_wrap=True)

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
    # log_config=None: uvicorn's records go to the handler logs.install set up, in its format.
    uvicorn.run(
        served(application),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,
    )


@app.command()
def compact() -> None:
    """Give the free space of the embedded SQLite store back to the disk (stop the server
    first). Expiry gives space back by itself, a slice at a time; a large store made by an
    earlier version needs this once before it can, and it also defragments."""
    from querybatch.engine.factory import compact_store, store_url

    settings = settings_with()
    console.print(f"compacting {store_url(settings)}", highlight=False)
    try:
        before, after = compact_store(settings)
    except ConfigurationError as exc:  # the operator's to fix: another store, or stop first
        detail = f" ({exc.description})" if exc.description else ""
        raise fail(f"{exc.message}{detail}") from None
    console.print(f"{before:,} bytes -> {after:,} bytes", highlight=False)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "--processes",
            min=1,
            max=256,
            help="Worker processes; each runs many chunks at once on one event loop [default: 2].",
        ),
    ] = None,
    chunks: Annotated[
        int,
        typer.Option(min=1, max=1000, help="Chunks of sub-queries each process runs at once."),
    ] = 100,
    log_level: Annotated[str, typer.Option(help="Celery log level.")] = "warning",
    supervise: Annotated[
        bool,
        typer.Option(
            help="Start each worker process again whenever it ends by itself (a broker "
            "restart can end it); --no-supervise runs one worker process in this process, for "
            "a process manager that restarts it itself."
        ),
    ] = True,
    node: Annotated[
        str | None,
        typer.Option(
            help="Celery node name of the one process --no-supervise runs (default celery@"
            "host); give each on one host its own, e.g. 'qb1@%h'."
        ),
    ] = None,
) -> None:
    """Run sub-queries handed out by the servers (QB_EXECUTOR=celery, QB_BROKER_URL)."""
    _arrow_allocator()  # its processes inherit it: they load transfers' rows with Arrow
    from querybatch.engine.factory import check_worker

    settings = settings_with()
    logs.install(settings.log_format, log_level)
    check_worker(settings)
    if supervise:
        concurrency = concurrency or 2
        console.print(
            f"querybatch worker on queue {settings.celery_queue}, {concurrency} processes of "
            f"{chunks} chunks each, supervised",
            highlight=False,
        )
        # Node names of their own: Celery tells its workers apart by them. Each is the
        # Celery worker alone, without the CLI (about 25 MB less apiece).
        commands = [
            [
                *(sys.executable, "-m", "querybatch.engine.executors.worker_process"),
                *(str(chunks), log_level, f"querybatch-{os.getpid()}-{number}@%h"),
            ]
            for number in range(1, concurrency + 1)
        ]
        # The supervisor needs none of what the checks imported: this process becomes a
        # lean one (about 15 MB instead of 85) that only starts and restarts the workers.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(
            sys.executable,
            [
                *(sys.executable, "-m", "querybatch.engine.executors.supervisor"),
                *(settings.log_format, log_level, json.dumps(commands)),
            ],
        )
    if concurrency not in (None, 1):
        raise fail(
            "--no-supervise runs one worker process: leave out --concurrency, and start one "
            "such command per process you want"
        )
    # Imported once checked: without the celery extra, the check says what to install.
    from querybatch.engine.executors.celery import run_worker

    run_worker(settings, chunks, log_level, node)


def _arrow_allocator() -> None:
    """Arrow allocates from the C library's allocator unless the operator chose another
    (``ARROW_DEFAULT_MEMORY_POOL``). Its default, mimalloc, kept what every Parquet row group
    had used: a Parquet download of 1,000,000 rows in 200,000 results grew the server by
    106 MB, and by 50 MB with this and row groups held as Arrow. Set before anything loads
    Arrow, which reads it once."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
