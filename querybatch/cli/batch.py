"""``querybatch batch``: submit, watch, cancel and download query batches on a server.

Exit codes of the commands that follow a batch to its end (``submit --wait``, ``watch``,
``status --wait``): 0 when every sub-query succeeded, 1 when any failed or stopped, 130 when
the user left with Ctrl-C (the batch goes on), 2 for a usage error, 3 when the server
cannot be reached.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.progress import Progress

from querybatch.cli.batch_rows import Keys, batch_rows, query_rows
from querybatch.cli.batch_views import (
    FAILED,
    batches_table,
    print_errors,
    print_failures,
    queries_table,
    timing,
)
from querybatch.cli.client import KeyOption, UrlOption
from querybatch.cli.common import app, console, errors, fail
from querybatch.cli.http import ApiClient, api_error
from querybatch.cli.watch import Left, counts_of, follow, leave_message
from querybatch.errors import ServiceUnavailable

batch_app = typer.Typer(
    help="Submit, watch, cancel and download query batches.", no_args_is_help=True
)
app.add_typer(batch_app, name="batch")

EXIT_FAILED = 1
EXIT_LEFT = 130  # as a shell reports a command ended by SIGINT
PAGE = 1000  # sub-query status items asked for at a time (the server's maximum)


def flag(name: str, help: str) -> Any:
    """An on/off option; an empty metavar keeps help from showing ``<bool>`` as a value."""
    return typer.Option(name, help=help, metavar="")


JsonOption = Annotated[bool, flag("--json", "Machine-readable output.")]
BatchId = Annotated[
    str,
    typer.Argument(
        metavar="BATCH_ID", help="The batch's id (qrb_ and 12 hex digits), as batch list shows."
    ),
]


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


def _items(api: ApiClient, batch: dict[str, Any], only_failed: bool) -> list[dict[str, Any]]:
    """The batch's sub-query status items, page by page (only the failed or stopped ones)."""
    items: list[dict[str, Any]] = []
    for offset in range(0, batch["query_amount"], PAGE):
        page = api.json(
            "GET",
            f"/query/batch/{batch['batch_id']}/status",
            params={"offset": offset, "limit": PAGE},
        )
        items.extend(i for i in page["data"] if not only_failed or i["status_code"] in FAILED)
    return items


def _show(batch: dict[str, Any]) -> None:
    console.print(batches_table([batch]))
    console.print(timing(batch))


def _follow_to_end(api: ApiClient, batch: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """Follow the batch until it stops; Ctrl-C leaves, saying how to come back (exit 130)."""
    mode: Literal["live", "lines", "none"] = "live" if errors.is_terminal else "lines"
    try:
        return follow(api, batch, mode="none" if as_json else mode)
    except Left as left:
        errors.print(leave_message(left.batch_id))
        raise typer.Exit(EXIT_LEFT) from None
    except ServiceUnavailable:
        errors.print(f"lost the server; follow again: querybatch batch watch {batch['batch_id']}")
        raise


def _finish(api: ApiClient, batch: dict[str, Any], as_json: bool) -> None:
    """Print the stopped batch (and its failures by reason); exit 1 unless all succeeded."""
    counts = counts_of(batch)
    failed = bool(counts["failure"] or counts["stopped"])
    if as_json:
        _print_json(batch)
    else:
        _show(batch)
        if failed:
            print_failures(batch, _items(api, batch, only_failed=True))
    if failed:
        raise typer.Exit(EXIT_FAILED)


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="JSON: a list of queries, or a batch object.")],
    wait: Annotated[
        bool, flag("--wait", "Follow the batch to its end (as batch watch does).")
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
                console.print(f"Follow it: querybatch batch watch {batch['batch_id']}")
            return
        if not as_json:
            errors.print(f"submitted {batch['batch_id']} ({batch['query_amount']} sub-queries)")
        _finish(api, _follow_to_end(api, batch, as_json), as_json)


@batch_app.command("watch")
def watch(
    batch_id: BatchId, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Follow a batch live (counts, rate, ETA) to its end; Ctrl-C leaves, the batch goes on.

    Exits 0 when every sub-query succeeded, 1 when any failed or stopped, 130 on Ctrl-C.
    With --json nothing is drawn; the stopped batch is printed as JSON.
    """
    with ApiClient(url, key) as api:
        batch = api.json("GET", f"/query/batch/{batch_id}")["data"]
        _finish(api, _follow_to_end(api, batch, as_json), as_json)


@batch_app.command("status")
def status(
    batch_id: BatchId,
    queries: Annotated[bool, flag("--queries", "List each sub-query too.")] = False,
    failed: Annotated[bool, flag("--failed", "List the failed and stopped sub-queries.")] = False,
    wait: Annotated[
        bool, flag("--wait", "Follow the batch to its end first (as watch does).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """A batch's status and counts by status; each sub-query's with --queries or --failed."""
    with ApiClient(url, key) as api:
        batch = api.json("GET", f"/query/batch/{batch_id}")["data"]
        if wait:
            batch = _follow_to_end(api, batch, as_json)
        listed = queries or failed
        items = _items(api, batch, only_failed=not queries) if listed else []
        counts = counts_of(batch)
        ended_badly = bool(counts["failure"] or counts["stopped"])
        failures = [i for i in items if i["status_code"] in FAILED]
        if wait and ended_badly and not listed and not as_json:
            failures = _items(api, batch, only_failed=True)
    if as_json:
        _print_json({"batch": batch, "queries": items} if listed else batch)
    else:
        _show(batch)
        if listed:
            console.print(queries_table(items))
            print_errors(failures)
        if wait or failed:
            print_failures(batch, failures)
    if wait and ended_badly:
        raise typer.Exit(EXIT_FAILED)


@batch_app.command("cancel")
def cancel(
    batch_id: BatchId, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Cancel a batch; what it collected stays readable."""
    with ApiClient(url, key) as api:
        batch = api.json("DELETE", f"/query/batch/{batch_id}")["data"]
    if as_json:
        _print_json(batch)
    else:
        _show(batch)


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
    """The newest batches of the key's tenant, in one table with their counts by status."""
    params: dict[str, Any] = {"limit": limit}
    if status_code:
        params["status"] = status_code
    with ApiClient(url, key) as api:
        batches = api.json("GET", "/query/batch", params=params)["data"]
    if as_json:
        _print_json(batches)
    elif not batches:
        console.print("no batches" + (f" with status {status_code}" if status_code else ""))
    else:
        console.print(batches_table(batches))


@batch_app.command("results")
def results(
    batch_id: BatchId,
    query: Annotated[
        int | None, typer.Option(help="Only the rows of sub-query N (from 1).")
    ] = None,
    keys: Annotated[
        Keys,
        typer.Option(help="Key rows by field id (as download does) or by the fields' labels."),
    ] = Keys.ids,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print collected rows as JSON lines with typed values, each with its schedule_id.

    Keys are field ids by default, as batch download writes them; --keys labels: labels.

    The output is JSON lines already, so this command has no --json option.
    """
    with ApiClient(url, key) as api:
        if query is None:
            batch_rows(api, batch_id, keys)
        else:
            query_rows(api, f"{batch_id}_query_{query}", keys)


@batch_app.command("download")
def download(
    batch_id: BatchId,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    output_format: Annotated[
        str, typer.Option("--format", help="ndjson, csv or parquet.")
    ] = "ndjson",
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Download every result of a batch into one file (keys: field ids), showing progress."""
    with ApiClient(url, key, timeout=600) as api:
        _stream(api, f"/query/batch/{batch_id}/download", {"format": output_format}, output)
    size = output.stat().st_size
    if as_json:
        _print_json({"batch_id": batch_id, "path": str(output), "bytes": size})
    else:
        console.print(f"wrote {output} ({size} bytes)")


def _stream(api: ApiClient, path: str, params: dict[str, Any], output: Path) -> None:
    with api.http.stream("GET", path, params=params) as response:
        if response.status_code >= 400:
            response.read()
            raise api_error(response)
        with output.open("wb") as file, Progress(console=errors, transient=True) as bar:
            task = bar.add_task(f"downloading {path.split('/')[-2]}", total=None)
            for block in response.iter_bytes():
                file.write(block)
                bar.advance(task, len(block))
