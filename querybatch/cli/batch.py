"""``querybatch batch``: submit, watch, cancel and download query batches on a server."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from querybatch.cli.client import KeyOption, UrlOption
from querybatch.cli.common import app, console, errors, fail
from querybatch.cli.http import ApiClient, api_error

batch_app = typer.Typer(
    help="Submit, watch, cancel and download query batches.", no_args_is_help=True
)
app.add_typer(batch_app, name="batch")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def _read_body(path: Path) -> dict[str, Any]:
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise fail(f"cannot read {path}: {exc}") from exc
    if isinstance(raw, list):
        return {"queries": raw}
    if not isinstance(raw, dict):
        raise fail(f"{path} must hold a list of queries or a batch object")
    return raw


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="JSON: a list of queries, or a batch object.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until the batch stops.")
    ] = False,
    concurrency: Annotated[int | None, typer.Option(help="query_concurrency.")] = None,
    split_accounts: Annotated[str | None, typer.Option(help="none or all.")] = None,
    split_dates: Annotated[str | None, typer.Option(help="none, day, week or month.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="query_output_format.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="A description of the batch.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency-Key header.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Submit a batch of queries; with --wait, follow it to the end and summarise it."""
    body = _read_body(file)
    overrides = {
        "query_concurrency": concurrency,
        "split_accounts_policy": split_accounts,
        "split_dates_policy": split_dates,
        "query_output_format": output_format,
        "description": description,
    }
    body.update({k: v for k, v in overrides.items() if v is not None})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with ApiClient(url, key) as api:
        batch = api.json("POST", "/query/batch", json=body, headers=headers)["data"]
        if not wait:
            if as_json:
                _print_json(batch)
            else:
                console.print(f"{batch['batch_id']}: {batch['query_amount']} sub-queries queued")
            return
        batch = _follow(api, batch, quiet=as_json)
    if as_json:
        _print_json(batch)
    else:
        _summary(batch)
    progress = batch["progress"]
    if progress["failure"] or progress["stopped"]:
        raise typer.Exit(1)


def _follow(api: ApiClient, batch: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Poll the batch until it stops, drawing a progress bar on standard error."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, disable=quiet) as bar:
        task = bar.add_task(batch["batch_id"], total=batch["query_amount"], detail="")
        while True:
            counts = batch["progress"]
            done = counts["success"] + counts["failure"] + counts["stopped"]
            detail = f"running {counts['running']}, failed {counts['failure']}"
            bar.update(task, completed=done, detail=detail)
            if batch["status_code"] == "STOPPED":
                return batch
            time.sleep(0.5)
            batch = api.json("GET", f"/query/batch/{batch['batch_id']}")["data"]


def _summary(batch: dict[str, Any]) -> None:
    table = Table("batch", "status", "sub-queries", "success", "failure", "stopped", "seconds")
    counts = batch["progress"]
    seconds = "-"
    if batch.get("start_time") and batch.get("end_time"):
        from datetime import datetime

        start = datetime.fromisoformat(batch["start_time"])
        end = datetime.fromisoformat(batch["end_time"])
        seconds = f"{(end - start).total_seconds():.1f}"
    table.add_row(
        batch["batch_id"],
        batch["status_code"] + (" (cancelled)" if batch.get("cancel_time") else ""),
        str(batch["query_amount"]),
        str(counts["success"]),
        str(counts["failure"]),
        str(counts["stopped"]),
        seconds,
    )
    console.print(table)


@batch_app.command("status")
def status(
    batch_id: str,
    queries: Annotated[bool, typer.Option("--queries", help="List each sub-query too.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """A batch's status and counters (and each sub-query's with --queries)."""
    with ApiClient(url, key) as api:
        batch = api.json("GET", f"/query/batch/{batch_id}")["data"]
        items: list[dict[str, Any]] = []
        if queries:
            offset = 0
            while offset < batch["query_amount"]:
                page = api.json(
                    "GET",
                    f"/query/batch/{batch_id}/status",
                    params={"offset": offset, "limit": 1000},
                )
                items.extend(page["data"])
                offset += 1000
    if as_json:
        _print_json({"batch": batch, "queries": items} if queries else batch)
        return
    _summary(batch)
    if items:
        table = Table("schedule_id", "status", "accounts", "dates", "rows", "error")
        for item in items:
            split = item["split_info"]
            table.add_row(
                item["schedule_id"],
                item["status_code"],
                ",".join(split["ds_accounts"]) or "all",
                f"{split['start_date']}..{split['end_date']}",
                str((item["result_info"] or {}).get("total_rows", "")),
                (item["error_info"] or {}).get("message", ""),
            )
        console.print(table)


@batch_app.command("cancel")
def cancel(
    batch_id: str, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Cancel a batch; what it collected stays readable."""
    with ApiClient(url, key) as api:
        batch = api.json("DELETE", f"/query/batch/{batch_id}")["data"]
    if as_json:
        _print_json(batch)
    else:
        _summary(batch)


@batch_app.command("list")
def list_batches(
    status_code: Annotated[
        str | None, typer.Option("--status", help="QUEUED, RUNNING or STOPPED.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """The newest batches of the key's tenant."""
    params: dict[str, Any] = {"limit": limit}
    if status_code:
        params["status"] = status_code
    with ApiClient(url, key) as api:
        batches = api.json("GET", "/query/batch", params=params)["data"]
    if as_json:
        _print_json(batches)
        return
    for batch in batches:
        _summary(batch)


@batch_app.command("results")
def results(
    batch_id: str,
    query: Annotated[
        int | None, typer.Option(help="Only the rows of sub-query N (from 1).")
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print collected rows as JSON lines: every sub-query's, or one's with --query."""
    with ApiClient(url, key) as api:
        if query is None:
            _stream(api, f"/query/batch/{batch_id}/download", {"format": "ndjson"}, None)
            return
        schedule_id = f"{batch_id}_query_{query}"
        offset = 0
        while True:
            page = api.json(
                "GET",
                "/query/results",
                params={"schedule_id": schedule_id, "offset": offset, "limit": 10_000},
            )
            rows = page["data"]
            header, body = (
                (rows[0], rows[1:]) if rows and isinstance(rows[0], list) else (None, rows)
            )
            for row in body:
                _print_json(dict(zip(header, row, strict=True)) if header else row)
            if "next" not in page["meta"].get("paginate", {}):
                return
            offset += 10_000


@batch_app.command("download")
def download(
    batch_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    output_format: Annotated[
        str, typer.Option("--format", help="ndjson, csv or parquet.")
    ] = "ndjson",
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Download every result of a batch into one file, showing progress."""
    with ApiClient(url, key, timeout=600) as api:
        _stream(api, f"/query/batch/{batch_id}/download", {"format": output_format}, output)
    console.print(f"wrote {output} ({output.stat().st_size} bytes)")


def _stream(api: ApiClient, path: str, params: dict[str, Any], output: Path | None) -> None:
    with api.http.stream("GET", path, params=params) as response:
        if response.status_code >= 400:
            response.read()
            raise api_error(response)
        if output is None:
            for block in response.iter_bytes():
                sys.stdout.buffer.write(block)
            return
        with output.open("wb") as file, Progress(console=errors, transient=True) as bar:
            task = bar.add_task(f"downloading {path.split('/')[-2]}", total=None)
            for block in response.iter_bytes():
                file.write(block)
                bar.advance(task, len(block))
