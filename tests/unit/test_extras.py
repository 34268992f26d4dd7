"""Settings that need an optional extra name its exact ``pip install`` when it is missing.

The real thing (a virtual environment without the extras) is tested end to end in
tests/e2e/test_install_without_extras.py; here each setting is checked with the module it
needs hidden from ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from querybatch.connectors.sql import SqlConnector
from querybatch.engine.factory import check_extras
from querybatch.errors import MissingDependency
from querybatch.settings import Settings


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the named modules look not installed."""

    def hide_modules(*names: str) -> None:
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a)
        )

    return hide_modules


def source(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "table": "orders",
        "date_column": "day",
        "account_column": "store_id",
        "dimensions": ["day"],
        "metrics": {"units": "sum"},
    }


def test_a_redis_rate_limit_url_asks_for_the_celery_extra(hide: Any, tmp_path: Path) -> None:
    hide("redis")
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(MissingDependency, match=r"^QB_REDIS_URL is a Redis URL, which needs redis"):
        check_extras(settings)


def test_a_plain_postgres_url_asks_for_the_postgres_extra(hide: Any, tmp_path: Path) -> None:
    hide("psycopg")
    settings = Settings(data_dir=tmp_path, database_url="postgres://u@127.0.0.1/db")
    with pytest.raises(MissingDependency) as raised:
        check_extras(settings)
    assert raised.value.message.endswith("pip install 'querybatch[postgres]'")


def test_the_embedded_default_needs_no_extra(hide: Any, tmp_path: Path) -> None:
    hide("psycopg", "celery", "redis", "duckdb", "duckdb_engine")
    check_extras(Settings(data_dir=tmp_path))


def test_a_postgresql_source_asks_for_the_postgres_extra(hide: Any) -> None:
    hide("psycopg", "psycopg2")
    with pytest.raises(MissingDependency, match=r"^sources.SHOP.url is a PostgreSQL URL"):
        SqlConnector.from_mapping("SHOP", source("postgresql://u@127.0.0.1/shop"))


def test_a_duckdb_source_asks_for_the_files_extra(hide: Any) -> None:
    hide("duckdb_engine")
    with pytest.raises(MissingDependency, match=r"querybatch\[files\]'$"):
        SqlConnector.from_mapping("SHOP", source("duckdb:////var/data/shop.duckdb"))
