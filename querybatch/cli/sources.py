"""``querybatch sources``: what a running server's data sources offer (client commands).

``list`` reads ``/ds/logins`` (the data sources with their logins), ``fields`` reads
``/query/fields`` and ``accounts`` ``/query/accounts``. Tables fold long ids rather than cut
them, so an id can be copied from an 80-column terminal; ``--json`` prints the data as is.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from querybatch.cli.client import KeyOption, UrlOption
from querybatch.cli.common import app, console
from querybatch.cli.http import ApiClient

sources_app = typer.Typer(
    help="Show the data sources of a running server: their logins, accounts and fields.",
    no_args_is_help=True,
)
app.add_typer(sources_app, name="sources")

DsId = Annotated[str, typer.Argument(help="The data source's id, e.g. DEMO_ADS.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's data as JSON.")]


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(*columns: str) -> Table:
    """A table whose cells are never cut short: ids are folded onto more lines when the
    screen is narrow, so that they can still be read and copied whole."""
    table = Table()
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


@sources_app.command("list")
def sources_list(as_json: AsJson = False, url: UrlOption = None, key: KeyOption = None) -> None:
    """List the data sources with their logins and how many accounts each login reads."""
    with ApiClient(url, key) as api:
        answer = api.json("GET", "/ds/logins")
    logins: list[dict[str, Any]] = answer["data"]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for login in logins:
        by_source.setdefault(login["ds_info"]["ds_id"], []).append(login)
    rows: list[dict[str, Any]] = [
        {
            "ds_id": ds_id,
            "logins": [
                {
                    "login_id": g["login_id"],
                    "username": g["username"],
                    "display_name": g["display_name"],
                    "account_count": g["account_count"],
                }
                for g in found
            ],
        }
        for ds_id, found in sorted(by_source.items())
    ]
    if as_json:
        _print_json(rows)
        return
    table = _table("ds_id", "login", "login id", "accounts")
    for row in rows:
        for g in row["logins"]:
            table.add_row(row["ds_id"], g["username"], g["login_id"], str(g["account_count"]))
    console.print(table)
    console.print(f"{len(rows)} data sources, {len(logins)} logins")


@sources_app.command("fields")
def sources_fields(
    ds_id: DsId, as_json: AsJson = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """List a data source's fields: dimensions (dim) and metrics (met), with data types."""
    with ApiClient(url, key) as api:
        answer = api.json("GET", "/query/fields", params={"ds_id": ds_id})
    fields: list[dict[str, Any]] = answer["data"]
    if as_json:
        _print_json(fields)
        return
    table = _table("field id", "name", "kind", "data type", "filter")
    for f in fields:
        table.add_row(
            f["field_id"],
            f["field_name"],
            f["field_type"],
            f["data_type"],
            "yes" if f["is_filterable"] else "no",
        )
    console.print(table)
    console.print(f"{len(fields)} fields of {ds_id}")


@sources_app.command("accounts")
def sources_accounts(
    ds_id: DsId,
    login: Annotated[
        list[str] | None,
        typer.Option("--login", help="Only this login's accounts (its ds_user); repeat for more."),
    ] = None,
    as_json: AsJson = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List the accounts of a data source, by login."""
    params: dict[str, Any] = {"ds_id": ds_id}
    if login:
        params["ds_users"] = ",".join(login)
    with ApiClient(url, key) as api:
        answer = api.json("GET", "/query/accounts", params=params)
    logins: list[dict[str, Any]] = answer["data"]
    if as_json:
        _print_json(logins)
        return
    table = _table("login", "account id", "name", "group")
    count = 0
    for g in logins:
        for a in g["accounts"]:
            count += 1
            table.add_row(g["ds_user"], a["account_id"], a["account_name"], a["group_name"])
    console.print(table)
    console.print(f"{count} accounts of {ds_id}, {len(logins)} logins")
