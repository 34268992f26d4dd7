"""``querybatch check``: validate the settings and a sources file without starting a server.

It runs what ``serve`` runs on its data sources before it listens (the same code, so the
same messages), but opens no store and binds no port: it can run beside a live server.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from querybatch.cli.common import EXIT_USAGE, app, console, fail, settings_with
from querybatch.errors import QueryBatchError


@app.command()
def check(
    sources: Annotated[
        Path | None,
        typer.Option(help="Data-source file to check, TOML or YAML (default: QB_SOURCES)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as a JSON object.")
    ] = False,
) -> None:
    """Check the settings (QB_ variables) and the data sources as serve would, then exit."""
    problems: list[str] = []
    ds_ids: list[str] = []
    from querybatch.engine.factory import check_sources  # the engine only when it runs

    try:
        ds_ids = check_sources(settings_with(sources=sources))
    except ValidationError as exc:
        problems = [_setting_problem(error) for error in exc.errors()]
    except QueryBatchError as exc:
        problems = [f"{exc.message} ({exc.description})" if exc.description else exc.message]
    if as_json:
        answer = {"ok": not problems, "sources": ds_ids, "errors": problems}
        sys.stdout.write(orjson.dumps(answer).decode() + "\n")
        if problems:
            raise typer.Exit(EXIT_USAGE)
        return
    if problems:
        for problem in problems[:-1]:
            fail(problem)
        raise fail(problems[-1])
    console.print(f"ok: {len(ds_ids)} sources ({', '.join(ds_ids)})")


def _setting_problem(error: object) -> str:
    """One line for one invalid setting, named by its environment variable."""
    assert isinstance(error, dict)
    where = "_".join(str(part) for part in error.get("loc", ())).upper()
    return f"QB_{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))
