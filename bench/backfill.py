"""A year's backfill against the same work as a plain query batch, on one server.

One ``querybatch serve`` on the embedded default (SQLite, in-process executor) with the demo
source answering after ``--latency-ms`` runs, one after the other:

- ``transfer``: a daily ``DEMO_ADS`` transfer of ``--accounts`` accounts into a DuckDB file
  (its own refresh-window run is left to end first), then ``backfills.create`` over ``--days``
  data dates through the official SDK; timed from the create call to the backfill seen
  ``COMPLETED`` (every run's load ended), polled every 50 ms;
- ``batch``: one query batch of the same sub-queries (one per account and data date, the
  fields the transfer's runs ask for, the same user), ``query_concurrency`` as the tenant's
  concurrency; timed from the POST to the batch seen ``STOPPED``, polled every 50 ms.

The server lets a tenant run ``--concurrency`` sub-queries at once (``QB_ACCOUNT_CONCURRENCY``
and ``QB_MAX_QUERY_CONCURRENCY``). After the backfill the benchmark reads the DuckDB file:
it fails unless the backfill's dates hold exactly the rows the batch's sub-queries gave, each
(data date, account) slice once. Figures: both makespans, their ratio (the target is at most
1.10), rows loaded, server CPU seconds of each.

Run it as ``python -m bench.backfill [--days 365] [--accounts 25] [--latency-ms 50]
[--concurrency 100]``; figures go to ``bench/results/backfill.json``.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench._batch import DS_ID, account_id, submit, wait_stopped
from bench._common import Figures, Profiling, parser, print_figures, profiling, ratio, run, target
from bench._server import ADMIN_KEY, BenchServer

NAME = "backfill"
BOUND = 1.10  # the bound: backfill makespan / plain batch makespan


def login_of(index: int) -> str:
    """The demo login that reads the account with this index (they alternate)."""
    return "ads.team@demo.example" if index % 2 == 0 else "ads.agency@demo.example"


POLL = 0.05
SYSTEM_PREFIX = "_qb_"  # the destination's own columns (transfer, data date, account...)


def server_env(concurrency: int, latency_ms: float) -> dict[str, str]:
    """A tenant that may run ``concurrency`` sub-queries at once, in one batch or many."""
    return {
        "QB_MAX_QUERY_CONCURRENCY": str(concurrency),
        "QB_ACCOUNT_CONCURRENCY": str(concurrency),
        "QB_WORKERS": str(max(concurrency, 256)),
        "QB_DEMO_LATENCY_MS": str(latency_ms),
        "QB_MAX_BATCH_QUERIES": "1000000",
    }


def _sdk(server: BenchServer) -> Any:
    from supermetrics import SupermetricsClient

    return SupermetricsClient(api_key=ADMIN_KEY, base_url=server.url, timeout=120)


def _wait_runs_ended(sdk: Any, team_id: int, transfer_id: int) -> list[Any]:
    """The transfer's runs once each has ended."""
    deadline = time.monotonic() + 600
    while True:
        runs = sdk.transfers.list_runs(
            team_id=team_id,
            transfer_id=transfer_id,
            start_date=datetime(2000, 1, 1),
            end_date=datetime(2100, 1, 1),
        )
        if runs and all(r.status in ("COMPLETED", "FAILED") for r in runs):
            return list(runs)
        if time.monotonic() > deadline:
            raise RuntimeError("the transfer's runs did not end in 10 minutes")
        time.sleep(0.2)


def run_transfer(
    server: BenchServer,
    team_id: int,
    accounts: list[str],
    first: date,
    last: date,
    profile: Profiling | None = None,
) -> tuple[float, float, int]:
    """Make the transfer, let its own run end, then time the backfill (sampled by py-spy
    when ``profile`` says so); (seconds, server CPU seconds, runs failed)."""
    from supermetrics import TransferAccount, TransferSchedule

    with _sdk(server) as sdk:
        destination = sdk.destinations.create(
            team_id=team_id,
            type="DWH_DUCKDB",
            display_name="bench file",
            fields={"path": "backfill.duckdb"},
        )
        transfer_id: int = sdk.transfers.create(
            team_id=team_id,
            data_source_id=DS_ID,
            schema_id=1,
            destination_id=int(destination.id),
            display_name="bench history",
            schedule=[TransferSchedule(run_interval="daily", run_hour=4, refresh_window=1)],
            accounts=[
                TransferAccount(account_id=a, data_source_username=login_of(i))
                for i, a in enumerate(accounts)
            ],
        ).transfer_id
        _wait_runs_ended(sdk, team_id, transfer_id)
        with server.profiled(profile):
            cpu0 = server.cpu_seconds()
            started = time.perf_counter()
            made = sdk.backfills.create(
                team_id=team_id, transfer_id=transfer_id, range_start=first, range_end=last
            )
            while True:
                state = sdk.backfills.get(team_id=team_id, backfill_id=made.transfer_backfill_id)
                if state.status not in ("CREATED", "RUNNING"):
                    break
                time.sleep(POLL)
            seconds = time.perf_counter() - started
            cpu = server.cpu_seconds() - cpu0
    if state.status != "COMPLETED":
        raise RuntimeError(f"the backfill ended {state.status}: {state.error_report}")
    return seconds, cpu, int(state.transfer_runs_failed)


def loaded_rows(server: BenchServer, team_id: int, first: date, last: date) -> list[Any]:
    """The column names, then the backfill's rows in the DuckDB file: data date, account,
    then the data columns."""
    import duckdb

    path = server.data_dir / "destinations" / str(team_id) / "backfill.duckdb"
    with duckdb.connect(str(path), read_only=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'demo_ads' ORDER BY ordinal_position"
            ).fetchall()
        ]
        data = [n for n in names if not n.startswith(SYSTEM_PREFIX)]
        rows = conn.execute(
            f"SELECT _qb_data_date, _qb_account, {', '.join(data)} FROM main.demo_ads"
            " WHERE _qb_data_date BETWEEN ? AND ?",
            [first, last],
        ).fetchall()
    return [names, *rows]


def run_plain_batch(
    server: BenchServer,
    fields: list[str],
    accounts: list[str],
    first: date,
    days: int,
    concurrency: int,
) -> tuple[float, float, int, int]:
    """The same sub-queries as one batch; (seconds, server CPU seconds, succeeded, rows)."""
    last = first + timedelta(days=days - 1)
    body = {
        "description": "bench: the backfill's sub-queries as one batch",
        "split_dates_policy": "day",
        "query_concurrency": concurrency,
        "timeout_minutes": 60,
        "queries": [
            {
                "ds_id": DS_ID,
                "ds_accounts": [account],
                "ds_user": login_of(i),
                "fields": fields,
                "start_date": first.isoformat(),
                "end_date": last.isoformat(),
            }
            for i, account in enumerate(accounts)
        ],
    }
    with server.client() as client:
        cpu0 = server.cpu_seconds()
        started = time.perf_counter()
        batch_id = submit(client, body)
        data = wait_stopped(client, batch_id, POLL)
        seconds = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu0
        rows = 0
        offset = 0
        while True:
            page = client.get(
                f"/query/batch/{batch_id}/status", params={"offset": offset, "limit": 1000}
            )
            page.raise_for_status()
            queries = page.json()["data"]
            if not queries:
                break
            rows += sum(_total_rows(q) for q in queries)
            offset += len(queries)
    return seconds, cpu, int(data["progress"]["success"]), rows


def _total_rows(query: dict[str, Any]) -> int:
    return int((query.get("result_info") or {}).get("total_rows", 0))


def measure(
    days: int,
    n_accounts: int,
    latency_ms: float,
    concurrency: int,
    profile: Profiling | None = None,
) -> Figures:
    """The backfill (profiled when asked), then the plain batch of the same sub-queries, on
    one fresh server."""
    accounts = [account_id(i) for i in range(n_accounts)]
    # Well before today, so the transfer's own daily runs never load a date of the range.
    last = datetime.now(UTC).date() - timedelta(days=30)
    first = last - timedelta(days=days - 1)
    with BenchServer(server_env(concurrency, latency_ms)) as server:
        with server.client() as client:
            team_id = int(client.get("/whoami").json()["team_id"])
        fill_s, fill_cpu, failed = run_transfer(server, team_id, accounts, first, last, profile)
        names, *rows = loaded_rows(server, team_id, first, last)
        fields = [n for n in names if not n.startswith(SYSTEM_PREFIX)]
        batch_s, batch_cpu, succeeded, batch_rows = run_plain_batch(
            server, fields, accounts, first, days, concurrency
        )
    slices = {(r[0], r[1]) for r in rows}
    if failed or len(rows) != batch_rows or len(set(rows)) != len(rows):
        raise RuntimeError(
            f"the destination holds {len(rows)} rows ({len(set(rows))} distinct) of the "
            f"backfill's dates; its sub-queries gave {batch_rows}; {failed} runs failed"
        )
    if len(slices) != days * n_accounts or succeeded != days * n_accounts:
        raise RuntimeError(
            f"{len(slices)} (date, account) slices loaded, {succeeded} sub-queries succeeded;"
            f" expected {days * n_accounts}"
        )
    return {
        "days": days,
        "accounts": n_accounts,
        "subqueries": days * n_accounts,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "backfill_makespan_s": fill_s,
        "batch_makespan_s": batch_s,
        "ratio": ratio(fill_s, batch_s),
        "rows_loaded": len(rows),
        "backfill_server_cpu_s": fill_cpu,
        "batch_server_cpu_s": batch_cpu,
    }


def report(figures: Figures) -> None:
    """Print the figures against the bound."""
    print_figures(
        f"backfill: {figures['days']:.0f} days x {figures['accounts']:.0f} accounts,"
        f" L={figures['latency_ms']:.0f} ms, C={figures['concurrency']:.0f}",
        [
            ("backfill_makespan_s", figures["backfill_makespan_s"], "create -> COMPLETED seen"),
            ("batch_makespan_s", figures["batch_makespan_s"], "POST -> STOPPED seen"),
            (
                "ratio",
                figures["ratio"],
                f"backfill / batch; target <= {BOUND:.2f}: {target(figures['ratio'] <= BOUND)}",
            ),
            ("rows_loaded", figures["rows_loaded"], "= the batch's rows, each slice once"),
            ("backfill_server_cpu_s", figures["backfill_server_cpu_s"], "loads included"),
            ("batch_server_cpu_s", figures["batch_server_cpu_s"], ""),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--days", type=int, default=365, help="data dates (default %(default)s)")
    args.add_argument("--accounts", type=int, default=25, help="accounts (default %(default)s)")
    args.add_argument(
        "--latency-ms", type=float, default=50.0, help="connector latency (default %(default)s)"
    )
    args.add_argument(
        "--concurrency", type=int, default=100, help="tenant concurrency (default %(default)s)"
    )
    args.add_argument(
        "--no-wait", action="store_true", help="measure at once, not on a quiet machine"
    )
    ns = args.parse_args(argv)
    return run(
        NAME,
        ns.out,
        lambda: measure(ns.days, ns.accounts, ns.latency_ms, ns.concurrency, profiling(ns)),
        report,
        wait_for_quiet=not ns.no_wait,
    )


if __name__ == "__main__":
    main()
