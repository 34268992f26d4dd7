"""What every command shares: the Typer app, the consoles, settings and exit codes."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from querybatch.settings import Settings

app = typer.Typer(
    help="querybatch: asynchronous batch query server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
