"""Fixtures of the fuzz suite: one server, and a key of each built-in role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import ADMIN_KEY, ServerProcess, client, running_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: property-based fuzzing of the OpenAPI document")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server whose rate limit never gets in the fuzzer's way."""
    env = {"QB_RATE_LIMIT": "100000000"}
    with running_server(tmp_path_factory.mktemp("fuzz"), **env) as server:
        yield server


@pytest.fixture(scope="module")
def role_keys(fuzz_server: ServerProcess) -> dict[str, str]:
    """A key of each built-in role, created by the admin key as a user would."""
    keys = {"admin": ADMIN_KEY}
    with client(fuzz_server) as admin:
        for role in ("analyst", "viewer"):
            made = admin.post("/keys", json={"name": f"fuzz-{role}", "role": role})
            assert made.status_code == 201, made.text
            keys[role] = made.json()["secret"]
    return keys
