"""How ``querybatch batch`` shows batches: tables with whole ids, and failures by reason.

Ids are what users copy into the next command, so no table ever shortens one: id columns
never wrap or get an ellipsis, and the other columns give way in a narrow terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from querybatch.cli.common import console
from querybatch.cli.watch import STATES, counts_of

FAILED = ("FAILURE", "STOPPED")


def _id_column(table: Table, header: str, ids: Iterable[str]) -> None:
    width = max([len(header), *(len(i) for i in ids)])
    table.add_column(header, no_wrap=True, overflow="fold", min_width=width)


def _status(batch: dict[str, Any]) -> str:
    return "cancelled" if batch.get("cancel_time") else str(batch["status_code"])


def _table(*headers: str) -> Table:
    # No vertical rules, no outer edge, one space between columns: eight columns of counts
    # then fit in 80 columns beside a whole batch id.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header in headers:
        table.add_column(header)
    return table


def batches_table(batches: list[dict[str, Any]]) -> Table:
    """One table of batches: status, size and counts by status."""
    table = _table()
    _id_column(table, "batch", [b["batch_id"] for b in batches])
    table.add_column("status")
    for header in ("total", *STATES):
        table.add_column(header, justify="right")
    for batch in batches:
        counts = counts_of(batch)
        table.add_row(
            batch["batch_id"],
            _status(batch),
            str(batch["query_amount"]),
            *(str(counts[state]) for state in STATES),
        )
    return table


def timing(batch: dict[str, Any]) -> str:
    """When the batch ran, and for how long once it stopped."""
    parts = [f"created {batch.get('created_time') or '-'}"]
    if batch.get("start_time") and batch.get("end_time"):
        start = datetime.fromisoformat(batch["start_time"])
        end = datetime.fromisoformat(batch["end_time"])
        parts.append(f"ran {(end - start).total_seconds():.1f} s")
    if batch.get("cancel_time"):
        parts.append(f"cancelled {batch['cancel_time']}")
    return ", ".join(parts)


def error_text(item: dict[str, Any]) -> str:
    """A sub-query's error in full: its code, message and description."""
    error = item.get("error_info") or {}
    if not error:
        return ""
    text = f"{error.get('code', '')}: {error.get('message', '')}"
    if error.get("description"):
        text += f" ({error['description']})"
    return text


def queries_table(items: list[dict[str, Any]]) -> Table:
    """One row per sub-query: status, split, rows and error code (errors follow in full)."""
    table = _table()
    _id_column(table, "schedule_id", [i["schedule_id"] for i in items])
    for header in ("status", "accounts", "dates", "rows", "error"):
        table.add_column(header, justify="right" if header == "rows" else "left")
    for item in items:
        split = item["split_info"]
        table.add_row(
            item["schedule_id"],
            item["status_code"],
            ", ".join(split["ds_accounts"]) or "all",
            _dates(split["start_date"], split["end_date"]),
            str((item.get("result_info") or {}).get("total_rows", "")),
            (item.get("error_info") or {}).get("code", ""),
        )
    return table


def _dates(start: str, end: str) -> str:
    return start if start == end else f"{start} .. {end}"


def print_errors(items: list[dict[str, Any]]) -> None:
    """Each failed or stopped sub-query's error in full, one paragraph each."""
    for item in items:
        if item.get("error_info"):
            console.print(Text.assemble((item["schedule_id"], "bold"), " ", error_text(item)))


def reasons(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many sub-queries failed or stopped for each (code, reason).

    An account error names its accounts in the message and each account's reason in the
    description (``account: reason; ...``); its sub-queries are counted by those reasons,
    so that one unknown account in many sub-queries makes one line, not one per account.
    """
    found: Counter[tuple[str, str]] = Counter()
    for item in items:
        error = item.get("error_info")
        if item["status_code"] not in FAILED or not error:
            continue
        code, description = str(error.get("code", "")), error.get("description") or ""
        why = {part.partition(": ")[2] for part in description.split("; ") if ": " in part}
        if code == "ACCOUNT_ERROR" and why:
            found.update((code, reason) for reason in sorted(why))
        else:
            found[(code, str(error.get("message") or description))] += 1
    return found


def print_failures(batch: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """The failures of a stopped batch by reason, and the command that lists each one."""
    counted = reasons(items)
    counts = counts_of(batch)
    if not counted and not (counts["failure"] or counts["stopped"]):
        return
    console.print(
        f"{counts['failure']} sub-queries failed, {counts['stopped']} stopped. By reason:"
    )
    table = _table("count", "code", "reason")
    table.columns[0].justify = "right"
    table.columns[2].overflow = "fold"
    for (code, reason), count in counted.most_common():
        table.add_row(str(count), code, reason)
    console.print(table)
    console.print(
        Text.assemble(
            "See each one: ", (f"querybatch batch status {batch['batch_id']} --failed", "bold")
        )
    )
