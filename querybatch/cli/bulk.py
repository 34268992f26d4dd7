"""``querybatch bulk``: submit, watch, cancel, delete and download bulk file batches.

A bulk file holds one ``get_data`` operation per JSON line (docs/bulk.md). ``submit``
hashes the file, uploads it to a signed URL, creates the batch with the hash and, with
``--wait``, follows it to a final status and fetches its results.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from querybatch.cli import bulk_transfer as transfer
from querybatch.cli.client import KeyOption, UrlOption
from querybatch.cli.common import app, console, errors, fail
from querybatch.cli.http import ApiClient, Polled
from querybatch.domain.bulk import FINAL_BULK_STATUSES, BulkStatus
from querybatch.domain.dates import LATEST_EPOCH

bulk_app = typer.Typer(
    help="Submit, watch, cancel, delete and download bulk file batches (docs/bulk.md).",
    no_args_is_help=True,
)
app.add_typer(bulk_app, name="bulk")

EXIT_INTERRUPTED = 130
POLL_SECONDS = 0.5
SHOWN_BAD_LINES = 10
FINAL = {status.value for status in FINAL_BULK_STATUSES}
REASONS = {
    BulkStatus.HASH_MISMATCH.value: "the uploaded file's SHA-256 differs from the hash sent "
    "(did the file change during the upload?)",
    BulkStatus.VALIDATION_FAILED.value: "some lines are not valid operations; none ran",
    BulkStatus.CANCELLED.value: "the batch was cancelled; finished lines keep their results",
}

BatchId = Annotated[str, typer.Argument(help="The batch's id (a UUID).", show_default=False)]
# An empty metavar: a flag takes no value, so its help shows none.
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the batch as JSON on standard output.", metavar=""),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="Follow the batch until it ends, showing its progress.", metavar=""
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="With --wait, write the results file here.", show_default=False
    ),
]


@bulk_app.command("submit")
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines file: one get_data operation per line.", show_default=False
        ),
    ],
    wait: WaitOption = False,
    output: OutputOption = None,
    operation: Annotated[str, typer.Option(help="The operation every line runs.")] = "get_data",
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Hash and upload FILE, then create a batch running one operation per line."""
    if output is not None and not wait:
        raise fail("--output needs --wait: results exist only once the batch has ended")
    digest = transfer.sha256_of(file)
    with ApiClient(url, key) as api:
        handler = transfer.upload(api, file)
        try:
            batch = api.json(
                "POST",
                "/batches",
                json={"handler": handler, "operation": operation, "hash": digest},
            )
        except Exception:
            transfer.withdraw(api, handler)
            raise
        if not wait:
            _show(batch, as_json)
            return
        batch = _follow(api, batch, quiet=as_json, handler=handler)
        _finish(api, batch, output, as_json)


@bulk_app.command("status")
def status(
    batch_id: BatchId,
    wait: WaitOption = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """A batch's status and how many of its lines are done (and failed)."""
    with ApiClient(url, key) as api:
        batch = api.json("GET", f"/batches/{batch_id}")
        if not wait:
            _show(batch, as_json)
            return
        batch = _follow(api, batch, quiet=as_json)
        _finish(api, batch, output, as_json)


@bulk_app.command("list")
def list_batches(
    statuses: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only batches in this status (repeat, or separate with commas).",
            metavar="<status>",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many batches, newest first.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the list as JSON on standard output.", metavar="")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """The key's tenant's batches and their statuses, newest first."""
    # Both bounds given: the server lists newest first.
    params: dict[str, Any] = {"ge": 0, "le": LATEST_EPOCH, "limit": min(limit, 1000)}
    if statuses:
        params["status"] = statuses
    found: dict[str, str] = {}
    with ApiClient(url, key) as api:
        while len(found) < limit:
            page = api.json("GET", "/batches", params=params)
            found.update(page["batches"])
            if not page.get("cursor"):
                break
            params["cursor"] = page["cursor"]
    rows = list(found.items())[:limit]
    if as_json:
        _print_json([{"batch": batch_id, "status": state} for batch_id, state in rows])
        return
    table = Table(title=None if rows else "no batches")
    # Ids are what the other commands take: shown whole, folded rather than cut short.
    table.add_column("batch", no_wrap=True, overflow="fold", min_width=36)
    table.add_column("status")
    for batch_id, state in rows:
        table.add_row(batch_id, state)
    console.print(table)


@bulk_app.command("cancel")
def cancel(
    batch_id: BatchId, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Cancel a batch: unfinished lines stop, finished ones keep their results."""
    with ApiClient(url, key) as api:
        batch = api.json("PATCH", f"/batches/{batch_id}", json={"status": "cancel"})
    _show(batch, as_json)


@bulk_app.command("delete")
def delete(
    batch_id: BatchId, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Delete a batch: its work stops, and it and its files are gone."""
    with ApiClient(url, key) as api:
        batch = api.json("DELETE", f"/batches/{batch_id}")
    if as_json:
        _print_json(_public(batch))
    else:
        console.print(f"deleted {batch['batch']}")


@bulk_app.command("download")
def download(
    batch_id: BatchId,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write the results to.")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Download a batch's results file: one JSON line per line of the batch's file."""
    with ApiClient(url, key, timeout=600) as api:
        size = transfer.download(api, batch_id, output)
    console.print(f"wrote {output} ({size} bytes)")


def _follow(
    api: ApiClient, batch: dict[str, Any], *, quiet: bool, handler: str | None = None
) -> dict[str, Any]:
    """Poll the batch until a final status, drawing its progress on standard error.

    On a terminal the progress is one live line; elsewhere (a log) each new status is a line
    of its own. ``handler``, the batch's upload, is withdrawn once the batch copied it.
    """
    batch_id = batch["batch"]
    polled = Polled(batch)
    live = errors.is_terminal and not quiet
    columns = (
        TextColumn("{task.description}"),
        TextColumn("{task.fields[status]}", style="cyan"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines done {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    shown = None
    try:
        with Progress(*columns, console=errors, disable=not live) as bar:
            task = bar.add_task(batch_id, total=None, status=batch["status"], failed="")
            while True:
                lines = batch.get("lines") or {}
                failed = f"({lines['failed']} failed)" if lines.get("failed") else ""
                bar.update(
                    task,
                    total=lines.get("total"),
                    completed=lines.get("done", 0),
                    status=batch["status"],
                    failed=failed,
                )
                if not live and not quiet and batch["status"] != shown:
                    errors.print(f"{batch_id}: {_progress_text(batch)}")
                    shown = batch["status"]
                if handler is not None and batch["status"] not in ("new", "copying"):
                    transfer.withdraw(api, handler)
                    handler = None
                if batch["status"] in FINAL:
                    return batch
                time.sleep(polled.wait(POLL_SECONDS))
                polled = api.poll(f"/batches/{batch_id}", polled)
                batch = polled.body
    except KeyboardInterrupt:
        errors.print(
            f"stopped watching: batch {batch_id} carries on on the server. "
            f"Follow it again with: querybatch bulk status {batch_id} --wait"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _finish(api: ApiClient, batch: dict[str, Any], output: Path | None, as_json: bool) -> None:
    """Show the ended batch, fetch its results to ``output``; exit 1 unless it completed."""
    _show(batch, as_json)
    state = batch["status"]
    if output is not None and state in ("completed", "cancelled", "validation_failed"):
        size = transfer.download(api, batch["batch"], output)
        errors.print(f"wrote {output} ({size} bytes)")
    if state == BulkStatus.COMPLETED.value:
        return
    errors.print(f"error: batch {batch['batch']} ended {state}: {REASONS.get(state, state)}")
    if state == BulkStatus.VALIDATION_FAILED.value:
        _print_bad_lines(api, batch["batch"])
    raise typer.Exit(1)


def _print_bad_lines(api: ApiClient, batch_id: str) -> None:
    """The first invalid lines of a batch that failed validation, and why."""
    for count, line in enumerate(
        transfer.result_lines(api, batch_id, lambda entry: entry.get("status") == "INVALID")
    ):
        if count == SHOWN_BAD_LINES:
            errors.print("(more in the results file: querybatch bulk download)")
            return
        error = line.get("error") or {}
        detail = f": {error['description']}" if error.get("description") else ""
        where = f"line {line['line']}" if line.get("line") else "file"
        errors.print(f"  {where}: {error.get('message', 'invalid')}{detail}")


def _show(batch: dict[str, Any], as_json: bool) -> None:
    """One batch, as JSON or as a two-column sheet (it fits any terminal, ids stay whole)."""
    if as_json:
        _print_json(_public(batch))
        return
    lines = batch.get("lines") or {}
    sheet = Table.grid(padding=(0, 2))
    sheet.add_column(style="bold", no_wrap=True)
    sheet.add_column(overflow="fold")
    sheet.add_row("batch", batch["batch"])
    sheet.add_row("status", batch["status"])
    if lines:
        sheet.add_row("lines", _count(lines.get("total")))
        sheet.add_row("done", str(lines.get("done", 0)))
        sheet.add_row("failed", str(lines.get("failed", 0)))
    sheet.add_row("created", _moment(batch.get("created_ts")))
    sheet.add_row("updated", _moment(batch.get("updated_ts")))
    if batch.get("hash"):
        sheet.add_row("sha256", batch["hash"])
    console.print(sheet)


def _progress_text(batch: dict[str, Any]) -> str:
    lines = batch.get("lines") or {}
    state = str(batch["status"])
    if lines.get("total") is None:
        return state
    if state == BulkStatus.VALIDATION_FAILED.value:
        return f"{state}, {lines['failed']} of {lines['total']} lines invalid"
    text = f"{state}, {lines['done']}/{lines['total']} lines done"
    return text + (f", {lines['failed']} failed" if lines.get("failed") else "")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _moment(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    # The request id is about one HTTP exchange, not about the batch.
    return {k: v for k, v in batch.items() if k != "meta"}


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
