"""``querybatch roles`` through the real entry point, against a live server's store.

Apart from the key commands' module so that the two run side by side: each spends most of
its time starting the CLI.
"""

from __future__ import annotations

import json
import subprocess

import httpx

from support import ServerProcess, run_cli

# The role commands call the engine's Access as the /roles routes do; roles per account on
# PostgreSQL run in the scale-out copies of tests/api/test_roles.py (its CLI test among
# them) and test_role_escalation.py.
DEPLOYMENTS = ("embedded",)


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(server, *args)


def test_roles_list_shows_the_builtin_roles(server: ServerProcess) -> None:
    roles = json.loads(cli(server, "roles", "list", "--json").stdout)
    assert {r["name"] for r in roles} >= {"admin", "analyst", "viewer"}


def roles_of(server: ServerProcess, *account: str) -> dict[str, dict[str, object]]:
    listed = cli(server, "roles", "list", "--json", *account)
    assert listed.returncode == 0, listed.stderr
    return {r["name"]: r for r in json.loads(listed.stdout)}


def test_a_role_made_with_account_is_that_accounts_alone(server: ServerProcess) -> None:
    args = "roles create cli-team --effect allow --action get_batches --account cli-a"
    made = cli(server, *args.split())
    assert made.returncode == 0, made.stderr
    assert roles_of(server, "--account", "cli-a")["cli-team"]["actions"] == ["get_batches"]
    assert "cli-team" not in roles_of(server)  # the default account's
    assert "cli-team" not in roles_of(server, "--account", "cli-b")
    elsewhere = cli(
        server, "keys", "create", "--name", "x", "--role", "cli-team", "--account", "cli-b"
    )
    assert elsewhere.returncode == 2 and "cli-team" in elsewhere.stderr
    key = cli(
        server, "keys", "create", "--name", "t", "--role", "cli-team", "--account", "cli-a", "-q"
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(server.url + "/batches", headers=headers).status_code == 200
    assert httpx.post(server.url + "/cache", headers=headers).status_code == 403


def test_the_same_role_name_in_two_accounts_names_two_roles(server: ServerProcess) -> None:
    for account, action in (("cli-c", "get_batch"), ("cli-d", "get_fields")):
        args = f"roles create twin --effect allow --action {action} --account {account}"
        made = cli(server, *args.split())
        assert made.returncode == 0, made.stderr
    assert roles_of(server, "--account", "cli-c")["twin"]["actions"] == ["get_batch"]
    assert roles_of(server, "--account", "cli-d")["twin"]["actions"] == ["get_fields"]
    deleted = cli(server, "roles", "delete", "twin", "--account", "cli-c")
    assert deleted.returncode == 0, deleted.stderr
    assert "twin" not in roles_of(server, "--account", "cli-c")
    assert "twin" in roles_of(server, "--account", "cli-d")
    again = cli(server, "roles", "delete", "twin", "--account", "cli-c")
    assert again.returncode == 2 and "no custom role twin" in again.stderr
