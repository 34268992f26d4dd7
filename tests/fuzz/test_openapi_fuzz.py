"""Every operation of ``/openapi.json``, fuzzed with a key of each built-in role.

Properties: no answer is a 5xx; every answer has a documented status code, content type and
schema; and a request refused with a 4xx changes nothing that requests can change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine

from querybatch.api.app import create_app
from support import ServerProcess

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

ROLES = ("admin", "analyst", "viewer")

# The document is built by the app factory, as the server builds the one it serves (a test
# below holds them equal), so that pytest can collect one test per operation up front.
DOCUMENT: dict[str, Any] = create_app().openapi()

# Fixed seed, no example database, derandomized: CI fuzzes the same cases on every run.
# The budget (10 cases of each operation for each role: about 2,000 requests, each checked
# against a snapshot of the store) keeps the module to about a minute and a half.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260110,
        "generation": {"deterministic": True, "database": "none", "max-examples": 10},
        "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)

# What requests (and only requests) change: a background task may move a batch along its
# lifecycle, so statuses are reduced to "was a cancel or delete asked for".
SNAPSHOT = {
    "keys": "SELECT id, role, revoked_at FROM api_keys ORDER BY id",
    "roles": "SELECT * FROM roles ORDER BY name",
    "query batches": "SELECT id, cancel_time FROM batches ORDER BY id",
    "queries": "SELECT count(*) FROM queries",
    "bulk batches": (
        "SELECT id, status IN ('cancel', 'cancelling', 'cancelled', 'deleting') "
        "FROM bulk_batches ORDER BY id"
    ),
    "uploads": "SELECT id, state FROM bulk_files WHERE kind = 'upload' ORDER BY id",
    "destinations": "SELECT id, settings, secrets, updated_at FROM destinations ORDER BY id",
    "transfers": "SELECT id, state, config, updated_at FROM transfers ORDER BY id",
    "backfills": "SELECT id, cancelled_at FROM backfills ORDER BY id",
}

Snapshot = dict[str, list[tuple[Any, ...]]]


@dataclass
class StateProbe:
    """Snapshots of the server's request-made state, read straight from its database."""

    engine: Engine
    before: Snapshot | None = field(default=None)

    def take(self) -> Snapshot:
        # Straight on the driver: SQLAlchemy's statement handling, twice per fuzzed request,
        # cost the suite more than the server's answers did.
        with self.engine.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                snapshot = {}
                for name, query in SNAPSHOT.items():
                    cursor.execute(query)
                    snapshot[name] = [tuple(row) for row in cursor.fetchall()]
                return snapshot
            finally:
                cursor.close()

    @contextmanager
    def around(self, case: schemathesis.Case) -> Iterator[None]:
        """Keep a ``before`` snapshot while a request that may change state runs."""
        changes = case.method.upper() != "GET" or case.path.startswith("/query/data")
        self.before = self.take() if changes else None
        try:
            yield
        finally:
            self.before = None


PROBES: list[StateProbe] = []


@schemathesis.check
def state_unchanged_on_client_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A request answered 4xx left keys, roles, batches, queries, uploads, destinations,
    transfers and backfills as they were."""
    probe = PROBES[-1] if PROBES else None
    if probe is None or probe.before is None or not 400 <= response.status_code < 500:
        return None
    after = probe.take()
    changed = [name for name in SNAPSHOT if probe.before[name] != after[name]]
    if changed:
        raise AssertionError(f"A {response.status_code} answer changed: {', '.join(changed)}")
    return True


@schemathesis.check
def no_server_error_but_not_offered(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx, except the 501 NOT_IMPLEMENTED of an SDK method a self-hosted server does not
    offer (a path or method the document does not name may reach one: ``GET
    /ds/login/links`` is "login links", ``DELETE /ds/login/{login_id}`` "revoking logins")."""
    if response.status_code == 501:
        assert response.json()["error"]["code"] == "NOT_IMPLEMENTED", response.text
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error_but_not_offered,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    state_unchanged_on_client_error,
]


@pytest.fixture(scope="module")
def state_probe(fuzz_server: ServerProcess) -> Iterator[StateProbe]:
    """The probe the state check reads, on the fuzzed server's database."""
    engine = create_engine(fuzz_server.database_url)
    PROBES.append(StateProbe(engine))
    yield PROBES[-1]
    PROBES.pop()
    engine.dispose()


@pytest.fixture(scope="module")
def http_session() -> Iterator[requests.Session]:
    """One connection pool for every fuzzed request, as a client would keep."""
    with requests.Session() as session:
        yield session


def test_the_fuzzed_document_is_the_one_the_server_serves(fuzz_server: ServerProcess) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_every_operation_keeps_its_contract_for_every_role(
    case: schemathesis.Case,
    role: str,
    role_keys: dict[str, str],
    fuzz_server: ServerProcess,
    state_probe: StateProbe,
    http_session: requests.Session,
) -> None:
    with state_probe.around(case):
        case.call_and_validate(
            base_url=fuzz_server.url,
            session=http_session,
            headers={"Authorization": f"Bearer {role_keys[role]}"},
            checks=CHECKS,
            timeout=30,
        )
