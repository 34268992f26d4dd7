"""Client commands: run a query on a server and show or save its rows."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from querybatch.cli.common import app, console
from querybatch.cli.http import ApiClient, api_error

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Server URL (default: QB_URL, else QB_HOST and QB_PORT)."),
]
KeyOption = Annotated[str | None, typer.Option("--key", help="API key (QB_API_KEY).")]


@app.command()
def query(
    ds_id: Annotated[str, typer.Option(help="Data source id, e.g. DEMO_ADS.")],
    fields: Annotated[str, typer.Option(help="Comma-separated field ids.")],
    start_date: Annotated[str, typer.Option(help="YYYY-MM-DD or relative (yesterday...).")],
    end_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD or relative.")] = None,
    accounts: Annotated[str | None, typer.Option(help="Comma-separated account ids.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="Row filter.")] = None,
    order_rows: Annotated[str | None, typer.Option(help="e.g. 'clicks desc'.")] = None,
    max_rows: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
    settings: Annotated[str | None, typer.Option(help="Settings as a JSON object.")] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Write CSV to standard output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Run one query and print its rows as a table, CSV or JSON."""
    params: dict[str, Any] = {"ds_id": ds_id, "fields": fields, "start_date": start_date}
    optional = {
        "end_date": end_date,
        "ds_accounts": accounts,
        "filter": filter_,
        "order_rows": order_rows,
        "max_rows": max_rows,
        "settings": settings,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    with ApiClient(url, key) as api:
        if csv:
            with api.http.stream("GET", "/query/data/csv", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise api_error(response)
                for block in response.iter_bytes():
                    sys.stdout.buffer.write(block)
            return
        with console.status("running the query..."):
            body = api.json("GET", "/query/data/json", params=params)
    if as_json:
        sys.stdout.write(orjson.dumps(body).decode() + "\n")
        return
    meta = body["meta"]
    if meta["status_code"] != "SUCCESS":
        console.print(f"status: {meta['status_code']}", meta.get("error") or "")
        raise typer.Exit(1)
    table = Table(*body["data"][0]) if body["data"] else Table()
    for row in body["data"][1:]:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"{meta['result']['total_rows']} rows, schedule_id {meta['schedule_id']}", highlight=False
    )
