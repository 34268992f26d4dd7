"""The official SDK's destinations, unchanged, against a real server process: every method,
sync and async; tenants and roles; bad input; secrets that never come back out."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from supermetrics import SupermetricsAsyncClient, SupermetricsClient
from supermetrics.exceptions import SupermetricsAPIError, SupermetricsNotFoundError

from support import ADMIN_KEY, ServerProcess, assert_error, client, run_cli, running_server

DEPLOYMENTS = ("embedded",)
PG_URL = urlsplit(
    os.environ.get("QB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
        "+psycopg", ""
    )
)


def pg_fields(password: str, port: int | None = None) -> dict[str, Any]:
    """A PostgreSQL destination's fields (the test database; ``port`` to point elsewhere)."""
    return {
        "host": PG_URL.hostname,
        "port": port or PG_URL.port or 5432,
        "database_name": PG_URL.path.lstrip("/"),
        "username": PG_URL.username or "postgres",
        "password": password,
        "schema": "qb_sdk_dest",
    }


@pytest.fixture(scope="module")
def server(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose operator lets destinations reach the test database on loopback."""
    data_dir = tmp_path_factory.mktemp(f"destinations-{deployment}")
    with running_server(data_dir, QB_DESTINATION_ALLOW_INTERNAL="true") as started:
        yield started


@pytest.fixture(scope="module")
def stranger_key(server: ServerProcess) -> str:
    """An admin key of another tenant."""
    made = run_cli(
        server, "keys", "create", "--name", "s", "--role", "admin", "--account", "globex", "--quiet"
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def viewer_key(server: ServerProcess) -> str:
    with client(server) as api:
        made = api.post("/keys", json={"name": "viewer", "role": "viewer"})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def test_every_destinations_method_through_the_sync_sdk(
    sdk: SupermetricsClient, server: ServerProcess, team_id: int
) -> None:
    password = "pw-" + uuid.uuid4().hex
    rotated = "rot-" + uuid.uuid4().hex
    answers: list[str] = []

    ok = sdk.destinations.test_connection(
        team_id=team_id, type="DWH_DUCKDB", display_name="probe", fields={"path": "probe.duckdb"}
    )
    assert ok.success is True and ok.error is None

    refused = sdk.destinations.test_connection(
        team_id=team_id, type="DWH_POSTGRESQL", display_name="x", fields=pg_fields(password, 1)
    )
    assert refused.success is False and refused.error
    answers.append(refused.error)

    created = sdk.destinations.create(
        team_id=team_id, type="DWH_POSTGRESQL", display_name="Warehouse", fields=pg_fields(password)
    )
    assert created.id and created.display_name == "Warehouse"
    assert created.destination_type.type_ == "DWH_POSTGRESQL"
    settings = {s.id: s for s in created.edit_settings}
    assert settings["password"].value is None and settings["password"].input_type == "password"
    assert settings["database_name"].value == PG_URL.path.lstrip("/")
    answers.append(str(created.to_dict()))

    listed = sdk.destinations.list(team_id=team_id)
    assert (created.id, "Warehouse", "DWH_POSTGRESQL") in [
        (d.id, d.display_name, d.type_) for d in listed
    ]

    fetched = sdk.destinations.get(team_id=team_id, destination_id=created.id)
    assert fetched.to_dict() == created.to_dict()
    answers.append(str(fetched.to_dict()))

    sealed_before = server.sql("SELECT secrets FROM destinations WHERE id = :i", i=created.id)[0][0]
    kept = dict(pg_fields(""), password="")
    updated = sdk.destinations.update(
        team_id=team_id,
        destination_id=created.id,
        type="DWH_POSTGRESQL",
        display_name="Renamed",
        fields=kept,
        new_password=rotated,
    )
    assert updated.display_name == "Renamed"
    answers.append(str(updated.to_dict()))
    sealed_after = server.sql("SELECT secrets FROM destinations WHERE id = :i", i=created.id)[0][0]
    assert sealed_after != sealed_before
    for sealed in (sealed_before, sealed_after):
        assert password not in sealed and rotated not in sealed

    stored = sdk.destinations.test_connection(
        team_id=team_id,
        type="DWH_POSTGRESQL",
        display_name="Renamed",
        fields=kept,
        destination_id=created.id,
    )
    assert stored.success is True, stored.error

    usage = sdk.destinations.get_usage(team_id=team_id, destination_id=created.id)
    assert usage.is_used is False and usage.transfers == []

    assert sdk.destinations.delete(team_id=team_id, destination_id=created.id) is None
    with pytest.raises(SupermetricsNotFoundError):
        sdk.destinations.get(team_id=team_id, destination_id=created.id)

    for text in [*answers, server.log()]:
        assert password not in text and rotated not in text


async def test_every_destinations_method_through_the_async_sdk(
    server: ServerProcess, team_id: int
) -> None:
    async with SupermetricsAsyncClient(api_key=ADMIN_KEY, base_url=server.url) as sdk:
        fields = {"storage": "local", "format": "csv", "path": "lake"}
        check = await sdk.destinations.test_connection(
            team_id=team_id, type="DWH_FILES", display_name="lake", fields=fields
        )
        assert check.success, check.error
        created = await sdk.destinations.create(
            team_id=team_id, type="DWH_FILES", display_name="lake", fields=fields
        )
        assert created.id in [d.id for d in await sdk.destinations.list(team_id=team_id)]
        got = await sdk.destinations.get(team_id=team_id, destination_id=created.id)
        assert {s.id: s.value for s in got.edit_settings}["format"] == "csv"
        updated = await sdk.destinations.update(
            team_id=team_id,
            destination_id=created.id,
            type="DWH_FILES",
            display_name="lake 2",
            fields={**fields, "format": "parquet"},
        )
        assert {s.id: s.value for s in updated.edit_settings}["format"] == "parquet"
        usage = await sdk.destinations.get_usage(team_id=team_id, destination_id=created.id)
        assert usage.is_used is False
        await sdk.destinations.delete(team_id=team_id, destination_id=created.id)
        with pytest.raises(SupermetricsNotFoundError):
            await sdk.destinations.get_usage(team_id=team_id, destination_id=created.id)


def test_another_tenant_sees_none_of_them(
    sdk: SupermetricsClient, server: ServerProcess, team_id: int, stranger_key: str
) -> None:
    mine = sdk.destinations.create(
        team_id=team_id, type="DWH_DUCKDB", display_name="mine", fields={}
    )
    with SupermetricsClient(api_key=stranger_key, base_url=server.url) as stranger:
        with pytest.raises(SupermetricsNotFoundError):
            stranger.destinations.list(team_id=team_id)
        with pytest.raises(SupermetricsNotFoundError):
            stranger.destinations.get(team_id=team_id, destination_id=mine.id)
        with client(server, stranger_key) as api:
            their_team = api.get("/whoami").json()["team_id"]
            for method, path in [
                ("GET", f"/teams/{their_team}/destinations/{mine.id}"),
                ("DELETE", f"/teams/{their_team}/destinations/{mine.id}"),
                ("GET", f"/teams/{their_team}/destinations/{mine.id}/usage"),
            ]:
                assert_error(api.request(method, path), 404, "NOT_FOUND")
        assert mine.id not in [d.id for d in stranger.destinations.list(team_id=their_team)]
    sdk.destinations.delete(team_id=team_id, destination_id=mine.id)


def test_a_viewer_reads_destinations_but_may_not_create_one(
    sdk: SupermetricsClient, server: ServerProcess, team_id: int, viewer_key: str
) -> None:
    mine = sdk.destinations.create(team_id=team_id, type="DWH_DUCKDB", display_name="v", fields={})
    with SupermetricsClient(api_key=viewer_key, base_url=server.url) as viewer:
        assert mine.id in [d.id for d in viewer.destinations.list(team_id=team_id)]
        viewer.destinations.get(team_id=team_id, destination_id=mine.id)
        with pytest.raises(SupermetricsAPIError) as caught:
            viewer.destinations.create(
                team_id=team_id, type="DWH_DUCKDB", display_name="no", fields={}
            )
        assert caught.value.status_code == 403
        with client(server, viewer_key) as api:
            assert_error(
                api.delete(f"/teams/{team_id}/destinations/{mine.id}"), 403, "PERMISSION_ERROR"
            )
    sdk.destinations.delete(team_id=team_id, destination_id=mine.id)


def _body(**changes: Any) -> dict[str, Any]:
    return {"type": "DWH_DUCKDB", "display_name": "d", "fields": {}, **changes}


@pytest.mark.parametrize(
    "body",
    [
        _body(type="DWH_NOPE"),
        _body(type="x" * 51),
        _body(display_name=""),
        _body(display_name="x" * 256),
        _body(fields={f"k{i}": 1 for i in range(51)}),
        _body(fields={"path": "../../etc/passwd"}),
        _body(fields={"path": "/abs/file"}),
        _body(fields={"unknown": "x"}),
        _body(fields={"path": "x" * 10_001}),
        _body(fields={"path": ["a"]}),
        _body(extra="x"),
        {"display_name": "no type", "fields": {}},
        _body(type="DWH_POSTGRESQL", fields={"host": "h", "database_name": "d", "port": 70000}),
        _body(type="DWH_FILES", fields={"storage": "s3"}),
    ],
)
def test_bad_input_is_a_400_and_stores_nothing(
    api: httpx.Client, team_id: int, body: dict[str, Any]
) -> None:
    before = api.get(f"/teams/{team_id}/destinations").json()["data"]
    assert_error(api.post(f"/teams/{team_id}/destinations", json=body), 400, "BAD_REQUEST")
    assert api.get(f"/teams/{team_id}/destinations").json()["data"] == before


def test_a_bad_secret_is_refused_without_being_echoed(api: httpx.Client, team_id: int) -> None:
    secret = "S" * 300 + uuid.uuid4().hex
    made = api.post(f"/teams/{team_id}/destinations", json=_body()).json()["data"]
    answer = api.put(f"/teams/{team_id}/destinations/{made['id']}", json=_body(new_password=secret))
    body = assert_error(answer, 400, "BAD_REQUEST")
    assert secret[:50] not in str(body)
    answer = api.put(
        f"/teams/{team_id}/destinations/{made['id']}",
        json=_body(type="DWH_POSTGRESQL", fields={"password": secret}),
    )
    assert secret[:50] not in assert_error(answer, 400, "BAD_REQUEST")["error"].get(
        "description", ""
    )
    assert api.delete(f"/teams/{team_id}/destinations/{made['id']}").status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/teams/{team}/destinations/0", 400, "BAD_REQUEST"),
        ("GET", "/teams/{team}/destinations/2147483648", 400, "BAD_REQUEST"),
        ("GET", "/teams/{team}/destinations/abc", 400, "BAD_REQUEST"),
        ("GET", "/teams/{team}/destinations/2147483647", 404, "NOT_FOUND"),
        ("PUT", "/teams/{team}/destinations/2147483647", 404, "NOT_FOUND"),
        ("GET", "/teams/1/destinations", 404, "NOT_FOUND"),
        ("GET", "/teams/abc/destinations", 400, "BAD_REQUEST"),
        ("POST", "/teams/{team}/destinations", 400, "BAD_REQUEST"),
    ],
)
def test_bad_paths_are_answered_in_the_envelope(
    api: httpx.Client, team_id: int, method: str, path: str, status: int, code: str
) -> None:
    target = path.format(team=team_id)
    content = b'{"type": "DWH_DUCKDB", "display_name": "d", "fields": {}}'
    answer = api.request(method, target, content=content if method == "PUT" else b"{nope")
    assert_error(answer, status, code)


def test_the_routes_are_served_under_the_older_prefixes_too(
    api: httpx.Client, team_id: int
) -> None:
    for prefix in ("/v2", "/enterprise/v2"):
        assert api.get(f"{prefix}/teams/{team_id}/destinations").status_code == 200


def test_an_internal_host_is_refused_unless_the_operator_allows_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_server(tmp_path_factory.mktemp("strict")) as strict, client(strict) as api:
        team = api.get("/whoami").json()["team_id"]
        body = {"type": "DWH_POSTGRESQL", "display_name": "x", "fields": pg_fields("pw-secret")}
        for path in ("", "/test-connection"):
            refused = api.post(f"/teams/{team}/destinations{path}", json=body)
            error = assert_error(refused, 400, "DESTINATION_HOST_NOT_ALLOWED")
            assert "pw-secret" not in refused.text and "QB_DESTINATION_ALLOW" in str(error)
        body["fields"] = {**pg_fields("pw"), "host": "169.254.169.254"}
        assert_error(
            api.post(f"/teams/{team}/destinations", json=body), 400, "DESTINATION_HOST_NOT_ALLOWED"
        )
        assert api.get(f"/teams/{team}/destinations").json()["data"] == []
