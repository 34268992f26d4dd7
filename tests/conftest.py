"""Fixtures: a server process per test module, and clients for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import DEPLOYMENT, ServerProcess, client, drop_scaleout_schemas, running_server

DEPLOYMENTS = ("embedded", "scaleout")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every behaviour test (tests/api, tests/e2e) once per deployment.

    A module whose behaviour cannot depend on the deployment (request parsing, say) names
    the deployments it needs in its own ``DEPLOYMENTS``.
    """
    if "deployment" in metafunc.fixturenames:
        modes = getattr(metafunc.module, "DEPLOYMENTS", DEPLOYMENTS)
        metafunc.parametrize("deployment", modes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest) -> Iterator[str]:
    """The deployment servers of this module start as: embedded, or PostgreSQL + Celery."""
    mode: str = request.param
    if mode == "scaleout":
        DEPLOYMENT.update(
            mode=mode,
            postgres=_service_url("QB_TEST_POSTGRES_URL"),
            redis=_service_url("QB_TEST_REDIS_URL"),
        )
    else:
        DEPLOYMENT["mode"] = mode
    yield mode
    DEPLOYMENT["mode"] = "embedded"
    drop_scaleout_schemas()


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
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


def _service_url(variable: str) -> str:
    """A service URL from the environment; skip when unset, unless CI demands the suite."""
    url = os.environ.get(variable)
    if not url:
        if os.environ.get("QB_CI"):
            pytest.fail(f"{variable} must be set in CI: this suite may not be skipped there")
        pytest.skip(f"{variable} is not set")
    return url


@pytest.fixture
def postgres_url() -> str:
    """The base PostgreSQL URL (QB_TEST_POSTGRES_URL); skipped locally when unset."""
    return _service_url("QB_TEST_POSTGRES_URL")


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema for one test: (URL whose search_path is it, schema name)."""
    import psycopg

    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    schema = "qbt_" + uuid.uuid4().hex[:12]
    try:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {plain} is unreachable: {exc}")
    separator = "&" if "?" in plain else "?"
    yield f"{plain}{separator}options=-csearch_path%3D{schema}", schema
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def redis_url() -> str:
    """The Redis URL (QB_TEST_REDIS_URL); skipped locally when unset."""
    return _service_url("QB_TEST_REDIS_URL")
