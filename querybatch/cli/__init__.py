"""The ``querybatch`` command: run the server, manage keys, and use a server as a client."""

from __future__ import annotations

import sys

from querybatch.cli.common import EXIT_UNAVAILABLE, EXIT_USAGE, app, fail
from querybatch.errors import MissingDependency, QueryBatchError

# Commands register themselves on ``app`` when their modules are imported.
from querybatch.cli import (  # noqa: F401  isort: skip
    admin,
    batch,
    bulk,
    check,
    client,
    help_types,
    server,
    sources,
)


def main() -> None:
    """Entry point: run the command, turning querybatch errors into one line and an exit code."""
    try:
        app()
    except QueryBatchError as exc:
        detail = f" ({exc.description})" if exc.description else ""
        # A missing install is the operator's to fix, like a wrong option: not "try later".
        usage = exc.status < 500 or isinstance(exc, MissingDependency)
        code = EXIT_USAGE if usage else EXIT_UNAVAILABLE
        sys.exit(fail(f"{exc.message}{detail}", code).exit_code)
