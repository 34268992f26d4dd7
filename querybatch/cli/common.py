"""What every command shares: the Typer app, the consoles, settings and exit codes."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from querybatch.settings import Settings

app = typer.Typer(
    help="querybatch: asynchronous batch query server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Markup is off on both consoles: messages carry ids, paths, user input and install hints
# such as ``pip install 'querybatch[files]'``, whose brackets Rich would otherwise eat as
# tags. Style is given with ``style=`` or Text objects, never with tags inside a string.
console = Console(markup=False, highlight=False)
errors = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on standard error; return the exit to raise with ``code``."""
    errors.print(Text.assemble(("error:", "red"), " ", message))
    return typer.Exit(code)


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top.

    A value that is not valid is one line naming its variable (``fail``), not a traceback.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "QB_" + "_".join(str(part) for part in first["loc"]).upper()
        raise fail(f"{name}: {first['msg']}") from None
