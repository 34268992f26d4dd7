"""Fixtures: a server process per test module, and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ServerProcess, client, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by the tests of one module (each test uses its own data)."""
    with running_server(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An admin client of the module's server."""
    with client(server) as http:
        yield http


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory for a server of one test."""
    return tmp_path / "data"
