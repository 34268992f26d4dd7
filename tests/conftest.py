"""Fixtures: server processes the test modules share, and clients for them."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from support import (
    DEPLOYMENT,
    ServerProcess,
    client,
    drop_scaleout_schemas,
    running_server,
    shared_server,
    stop_shared_servers,
)

DEPLOYMENTS = ("embedded", "scaleout")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every behaviour test (tests/api, tests/e2e) once per deployment.

    A module whose behaviour cannot depend on the deployment (request parsing, say) names
    the deployments it needs in its own ``DEPLOYMENTS``; a test of such a module that does
    depend on it (it reads back what the store holds, say) names them in a
    ``@pytest.mark.deployments(...)`` marker, which wins over the module's.
    """
    if "deployment" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("deployments")
        modes = marker.args if marker else getattr(metafunc.module, "DEPLOYMENTS", DEPLOYMENTS)
        metafunc.parametrize("deployment", modes, indirect=True, scope="module")


@pytest.fixture(scope="session", autouse=True)
def _shared_servers_stopped() -> Iterator[None]:
    """Stop the servers the modules of this test process shared, once they are all done."""
    yield
    stop_shared_servers()


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
def server(
    deployment: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The module's server: one per deployment, shared by the modules of this test process
    (each test uses its own data), since a start costs 1 to 2 s of CPU.

    A module whose tests read the process itself (what it has loaded, what it logged) is
    marked ``own_server`` and gets a server of its own.
    """
    if request.node.get_closest_marker("own_server"):
        with running_server(tmp_path_factory.mktemp("server")) as started:
            yield started
        return
    yield shared_server(deployment, tmp_path_factory)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An admin client of the module's server."""
    with client(server) as http:
        yield http


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory for a server of one test."""
    return tmp_path / "data"


# When QB_TEST_POSTGRES_URL / QB_TEST_REDIS_URL are unset, the services of a usual machine.
DEFAULT_SERVICES = {
    "QB_TEST_POSTGRES_URL": ("PostgreSQL", "postgresql://postgres@127.0.0.1:5432/test"),
    "QB_TEST_REDIS_URL": ("Redis", "redis://127.0.0.1:6379/0"),
}
SKIPPED_SUITES = re.compile(r"skipped (PostgreSQL|Redis) suites: .*")
# What probing a default service found, once per process: None when it answered.
_PROBED: dict[str, str | None] = {}


def _service_url(variable: str) -> str:
    """A service URL: the variable's, else the default service if it answers; else skip.

    Only a default that nothing answers at is skipped (and named in one line at the end of
    the run); with ``QB_CI=1`` that fails instead, since CI must run every suite.
    """
    url = os.environ.get(variable)
    if url:
        return url
    label, default = DEFAULT_SERVICES[variable]
    if variable not in _PROBED:
        _PROBED[variable] = _probe(label, default)
    problem = _PROBED[variable]
    if problem is None:
        return default
    if os.environ.get("QB_CI"):
        pytest.fail(f"{variable} is unset and {problem}: this suite may not be skipped in CI")
    pytest.skip(f"skipped {label} suites: {problem} (set {variable})")


def _probe(label: str, url: str) -> str | None:
    """Why the service at ``url`` cannot be used, or None: connect, then a real handshake.

    Nothing listening is a reason to skip; a service that listens but refuses the handshake
    is a broken set-up, which fails rather than hides the suites.
    """
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port}"
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except OSError:
        return f"nothing answers at {where}"
    try:
        if label == "PostgreSQL":
            import psycopg

            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        else:
            import redis

            redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except Exception as exc:
        pytest.fail(f"{label} at {where} answers but refused the tests ({exc}); set its URL")
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report a service skip at one place, so that ``-ra`` folds the suites into one line."""
    report = yield
    longrepr = getattr(report, "longrepr", None)
    if report.skipped and isinstance(longrepr, tuple) and SKIPPED_SUITES.search(str(longrepr[2])):
        report.longrepr = (__file__, _service_url.__code__.co_firstlineno, longrepr[2])
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per service whose suites were skipped because nothing answered.

    Skip reports reach the controlling process under pytest-xdist too, so the line is
    printed once, by whichever process writes the summary.
    """
    counts: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and (found := SKIPPED_SUITES.search(str(longrepr[2]))):
            counts[found.group(0)] += 1
    for reason, count in sorted(counts.items()):
        terminalreporter.write_line(f"{reason}: {count} tests not run")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The base PostgreSQL URL (QB_TEST_POSTGRES_URL, or the local default if it answers)."""
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
    """The Redis URL (QB_TEST_REDIS_URL, or the local default if it answers)."""
    return _service_url("QB_TEST_REDIS_URL")
