"""The ``querybatch`` command: run the server, manage keys, and use a server as a client."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from querybatch import __version__
from querybatch.errors import QueryBatchError
from querybatch.settings import Settings

app = typer.Typer(help="querybatch: asynchronous batch query server.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Manage API keys (directly in the server's store).", no_args_is_help=True
)
roles_app = typer.Typer(help="Manage roles (directly in the server's store).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(roles_app, name="roles")

console = Console()
errors = Console(stderr=True)

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def main() -> None:
    """Entry point: run the command, turning querybatch errors into one line and an exit code."""
    try:
        app()
    except QueryBatchError as exc:
        detail = f" ({exc.description})" if exc.description else ""
        errors.print(f"[red]error:[/red] {exc.message}{detail}", highlight=False)
        sys.exit(EXIT_UNAVAILABLE if exc.status >= 500 else EXIT_USAGE)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


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

    settings = _settings(host=host, port=port, sources=sources)
    # Check the store and every data source before listening, so that a mistake is one clear
    # line and an exit code rather than a traceback from inside the server.
    Store.open(settings.resolved_database_url, result_ttl=settings.result_ttl).close()
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


# -- keys and roles -------------------------------------------------------------------------


def _store() -> Any:
    from querybatch.store.store import Store

    settings = _settings()
    store = Store.open(settings.resolved_database_url, result_ttl=settings.result_ttl)
    store.keys.ensure_builtin_roles(time.time())
    return store


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    role: Annotated[
        str, typer.Option(help="Role: admin, analyst, viewer or a custom one.")
    ] = "analyst",
    account: Annotated[str, typer.Option(help="The tenant the key belongs to.")] = "default",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
) -> None:
    """Create an API key and print it (it cannot be shown again)."""
    store = _store()
    try:
        if store.keys.get_role(role) is None:
            raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
        record, secret = store.keys.create_key(name, role, account, time.time())
    finally:
        store.close()
    if not quiet:
        console.print(f"created key {record.id} ({record.role}, account {record.account}):")
    print(secret)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List API keys (never their secrets)."""
    store = _store()
    try:
        records = store.keys.list_keys(account)
    finally:
        store.close()
    rows = [
        {
            "id": r.id,
            "name": r.name,
            "prefix": r.prefix,
            "role": r.role,
            "account": r.account,
            "created_at": r.created_at,
            "revoked": r.revoked_at is not None,
        }
        for r in records
    ]
    if as_json:
        console.print_json(data=rows)
        return
    table = Table("id", "name", "prefix", "role", "account", "revoked")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["prefix"] + "…",
            row["role"],
            row["account"],
            str(row["revoked"]),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke an API key; requests with it are refused from then on."""
    store = _store()
    try:
        revoked = store.keys.revoke(key_id, time.time())
    finally:
        store.close()
    if not revoked:
        errors.print(f"[red]error:[/red] no active key {key_id}")
        raise typer.Exit(EXIT_USAGE)
    console.print(f"revoked {key_id}")


@roles_app.command("list")
def roles_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List roles and their statements."""
    store = _store()
    try:
        records = store.keys.list_roles()
    finally:
        store.close()
    rows = [
        {"name": r.name, "effect": r.effect, "actions": list(r.actions), "builtin": r.builtin}
        for r in records
    ]
    if as_json:
        console.print_json(data=rows)
        return
    table = Table("name", "effect", "actions", "built in")
    for row in rows:
        table.add_row(
            row["name"], row["effect"], ", ".join(row["actions"]) or "-", str(row["builtin"])
        )
    console.print(table)


if __name__ == "__main__":
    main()
