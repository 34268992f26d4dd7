"""Fixtures of the core's unit tests: a fresh SQLite store per test, a clock, a data source."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeClock, ScriptedConnector

from querybatch.connectors.registry import SourceRegistry
from querybatch.store.store import Store

RESULT_TTL = 3600


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the newest schema, migrated once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "qb.db"
    Store.open("sqlite:///" + str(path), result_ttl=RESULT_TTL).close()
    return path


@pytest.fixture
def store(tmp_path: Path, migrated_database: Path) -> Iterator[Store]:
    """The real store on a SQLite file of this test's own."""
    path = tmp_path / "qb.db"
    shutil.copyfile(migrated_database, path)
    opened = Store.open("sqlite:///" + str(path), result_ttl=RESULT_TTL, migrate=False)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    """Wall-clock time the test moves by hand."""
    return FakeClock()


@pytest.fixture
def connector() -> ScriptedConnector:
    """The data source ``FAKE``, answering as the test scripts it."""
    return ScriptedConnector()


@pytest.fixture
def sources(connector: ScriptedConnector) -> SourceRegistry:
    """The configured data sources: only ``FAKE``."""
    return SourceRegistry({connector.ds_id: connector})
