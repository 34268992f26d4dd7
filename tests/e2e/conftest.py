"""Every test here runs once per deployment (embedded, and PostgreSQL + Celery)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from supermetrics import SupermetricsClient

from support import ADMIN_KEY, ServerProcess, client


@pytest.fixture(autouse=True)
def _each_deployment(deployment: str) -> str:
    return deployment


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[SupermetricsClient]:
    """The official SDK, unchanged, pointed at the module's server with the admin key."""
    with SupermetricsClient(api_key=ADMIN_KEY, base_url=server.url) as sdk_client:
        yield sdk_client


@pytest.fixture(scope="module")
def team_id(server: ServerProcess) -> int:
    """The numeric team id of the admin key's tenant."""
    with client(server) as api:
        found: int = api.get("/whoami").json()["team_id"]
    return found
