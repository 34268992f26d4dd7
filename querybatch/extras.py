"""The optional dependencies, the extra of ``pyproject.toml`` that installs each, and the check.

A setting that needs one (a PostgreSQL store, the Celery executor, a files source) is checked
before anything imports it, so that a missing install is one line naming the exact
``pip install 'querybatch[...]'`` rather than a ``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

import importlib.util

from querybatch.errors import MissingDependency

# The importable module -> the extra that brings it (pyproject.toml's optional-dependencies).
EXTRA_OF = {
    "psycopg": "postgres",
    "celery": "celery",
    "redis": "celery",
    "duckdb": "files",
    "duckdb_engine": "files",
    "fsspec": "warehouse",
    "s3fs": "warehouse",
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(needed_by: str, *modules: str) -> None:
    """Raise :class:`MissingDependency` for the first of ``modules`` that is not installed.

    ``needed_by`` says what needs them, as the start of the message: ``"QB_EXECUTOR is
    celery"`` gives ``QB_EXECUTOR is celery, which needs celery: pip install
    'querybatch[celery]'``.
    """
    for module in modules:
        if not installed(module):
            raise MissingDependency(needed_by, module, EXTRA_OF[module])
