"""``querybatch keys`` and ``query`` through the real entry point, against a live server."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from support import ADMIN_KEY, ServerProcess, run_cli, wait_until

# The key commands call the engine's Access as the /keys routes do, which run on PostgreSQL
# in tests/api (and scaled-out tests make their keys with this command); a revocation made
# in the store alone, which a node must notice by itself, runs in both deployments.
DEPLOYMENTS = ("embedded",)


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(server, *args)


def test_a_created_key_is_printed_alone_with_quiet_and_works(server: ServerProcess) -> None:
    made = cli(server, "keys", "create", "--name", "ci", "--role", "viewer", "--quiet")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qb_")
    key = lines[0]
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(
        server.url + "/query/accounts", params={"ds_id": "DEMO_ADS"}, headers=headers
    )
    assert response.status_code == 200
    # A viewer may read but not run queries.
    denied = httpx.get(
        server.url + "/query/data/json",
        params={
            "ds_id": "DEMO_ADS",
            "fields": "date",
            "start_date": "yesterday",
            "end_date": "yesterday",
        },
        headers=headers,
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "PERMISSION_ERROR"


def accounts_status(server: ServerProcess, key: str) -> int:
    """The HTTP status of a read with ``key``."""
    response = httpx.get(
        server.url + "/query/accounts",
        params={"ds_id": "DEMO_ADS"},
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code


@pytest.mark.deployments("embedded", "scaleout")
def test_a_revoked_key_is_refused(server: ServerProcess) -> None:
    key = cli(server, "keys", "create", "--name", "gone", "--quiet").stdout.strip()
    listed = json.loads(cli(server, "keys", "list", "--json").stdout)
    key_id = next(k["id"] for k in listed if k["name"] == "gone")
    assert all("key_hash" not in k and key not in json.dumps(k) for k in listed)
    revoked = cli(server, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    # The CLI revokes in the store, not through this server, whose key cache may remember a
    # key for a few seconds: the revocation must show within that time.
    wait_until(lambda: accounts_status(server, key) == 401, timeout=10)
    again = cli(server, "keys", "revoke", key_id)
    assert again.returncode == 2


def test_an_unknown_role_is_refused(server: ServerProcess) -> None:
    made = cli(server, "keys", "create", "--name", "x", "--role", "wizard")
    assert made.returncode != 0
    assert "wizard" in made.stderr


def test_the_query_command_prints_rows_as_json_and_as_csv(server: ServerProcess) -> None:
    args = (
        "query",
        "--ds-id",
        "DEMO_ADS",
        "--fields",
        "date,clicks",
        "--start-date",
        "2026-01-01",
        "--end-date",
        "2026-01-03",
        "--accounts",
        "ads-0001",
    )
    env = {"QB_URL": server.url, "QB_API_KEY": ADMIN_KEY}
    as_json = run_cli(server, *args, "--json", **env)
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["data"][0] == ["Date", "Clicks"] and len(body["data"]) == 4
    as_csv = run_cli(server, *args, "--csv", **env)
    assert as_csv.stdout.splitlines() == [
        "Date,Clicks",
        *(f"{row[0]},{row[1]}" for row in body["data"][1:]),
    ]
    table = run_cli(server, *args, **env)
    assert table.returncode == 0 and "3 rows" in table.stdout
    bad = run_cli(
        server, "query", "--ds-id", "NOPE", "--fields", "date", "--start-date", "today", **env
    )
    assert bad.returncode == 2
    assert "NOPE" in bad.stderr and "Traceback" not in bad.stderr


def test_the_account_of_built_in_roles_cannot_hold_keys(server: ServerProcess) -> None:
    made = cli(server, "keys", "create", "--name", "x", "--role", "viewer", "--account", "*")
    assert made.returncode == 2 and "--account" in made.stderr
