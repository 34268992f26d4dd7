"""Client commands against a live server: finding it, explaining keys, and ``sources``."""

from __future__ import annotations

import json

from cli_support import querybatch

from support import ADMIN_KEY, ServerProcess

DEPLOYMENTS = ("embedded",)


def as_client(server: ServerProcess, *args: str, **env: str) -> dict[str, str]:
    """The environment of a client of ``server`` named by QB_PORT alone (no QB_URL)."""
    return {"QB_PORT": str(server.port), "QB_API_KEY": ADMIN_KEY, **env}


def test_a_client_command_finds_the_server_from_qb_port_without_qb_url(
    server: ServerProcess,
) -> None:
    listed = querybatch("sources", "list", "--json", **as_client(server))
    assert listed.returncode == 0, listed.stderr
    assert {s["ds_id"] for s in json.loads(listed.stdout)} == {"DEMO_ADS", "DEMO_WEB"}


def test_a_server_listening_on_every_address_is_reached_on_loopback(
    server: ServerProcess,
) -> None:
    listed = querybatch("sources", "list", "--json", **as_client(server, QB_HOST="0.0.0.0"))
    assert listed.returncode == 0, listed.stderr


def test_without_a_key_the_error_names_qb_api_key_and_the_key_option(
    server: ServerProcess,
) -> None:
    listed = querybatch("sources", "list", QB_PORT=str(server.port))
    assert listed.returncode == 2
    assert listed.stderr.strip() == "error: no API key: set QB_API_KEY or pass --key"


def test_a_key_the_server_refuses_is_said_to_be_refused(server: ServerProcess) -> None:
    listed = querybatch("sources", "list", "--key", "qb_not_a_key", QB_PORT=str(server.port))
    assert listed.returncode == 2
    assert listed.stderr.startswith("error: the API key from --key was refused")
    assert "qb_not_a_key" not in listed.stderr


def test_sources_list_shows_every_login_id_whole_at_80_columns(server: ServerProcess) -> None:
    logins = json.loads(querybatch("sources", "list", "--json", **as_client(server)).stdout)
    table = querybatch("sources", "list", **as_client(server, COLUMNS="80"))
    assert table.returncode == 0, table.stderr
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    ids = [g["login_id"] for source in logins for g in source["logins"]]
    assert len(ids) == 4 and all(login_id in table.stdout for login_id in ids)
    assert "2 data sources, 4 logins" in table.stdout


def test_sources_fields_lists_dimensions_and_metrics(server: ServerProcess) -> None:
    fields = querybatch("sources", "fields", "DEMO_ADS", "--json", **as_client(server))
    assert fields.returncode == 0, fields.stderr
    kinds = {f["field_id"]: f["field_type"] for f in json.loads(fields.stdout)}
    assert kinds["date"] == "dim" and kinds["clicks"] == "met"
    table = querybatch("sources", "fields", "DEMO_ADS", **as_client(server))
    assert f"{len(kinds)} fields of DEMO_ADS" in table.stdout


def test_sources_accounts_lists_the_accounts_of_one_login(server: ServerProcess) -> None:
    every = json.loads(
        querybatch("sources", "accounts", "DEMO_WEB", "--json", **as_client(server)).stdout
    )
    user = every[0]["ds_user"]
    one = querybatch(
        "sources", "accounts", "DEMO_WEB", "--login", user, "--json", **as_client(server)
    )
    assert one.returncode == 0, one.stderr
    assert [g["ds_user"] for g in json.loads(one.stdout)] == [user]
    table = querybatch("sources", "accounts", "DEMO_WEB", "--login", user, **as_client(server))
    assert all(a["account_id"] in table.stdout for a in every[0]["accounts"])


def test_an_unknown_data_source_is_one_error_line(server: ServerProcess) -> None:
    fields = querybatch("sources", "fields", "NOPE", **as_client(server))
    assert fields.returncode == 2
    lines = fields.stderr.strip().splitlines()
    assert len(lines) == 1 and "NOPE" in lines[0] and "Traceback" not in fields.stderr
