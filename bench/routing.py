"""Server CPU per request spent on a handful of routes, with the routes held flat and, in the
same run, as they were included before (the baseline): routing's share of each request.

Two idle ``querybatch serve`` processes (embedded default) run side by side: the server as
it is, whose app holds its routes flat and serves the prefixed paths through one mount per
prefix, and the same server with every router included by FastAPI once and again under
``/v2`` and ``/enterprise/v2`` (``bench/_included_server.py``), as it was before. Each gets
the same destination, transfer and backfill (through the official SDK) and is left until it
is idle (their runs ended). Then, ROUNDS times, each request below is made REQUESTS times in
a row to one server, then to the other (after a few to warm up), and the server's CPU time
(user plus system, all threads) is divided by the requests made. Reported in ms: the median
round of each, and the median of the rounds' differences:

- ``healthz``: the floor (no key, first of the routes either way);
- ``whoami``, ``transfer`` (``GET /teams/{team}/transfers/{id}``), ``backfill`` (``GET
  /teams/{team}/backfills/{id}``, one of the last routes): keyed reads, in route order;
- ``backfill_v2``: the same under ``/v2``; ``logins_enterprise``: ``GET
  /enterprise/v2/ds/logins``, the last router under the last prefix;
- ``not_found``: ``GET /no/such/route`` (404 after every route, twice: once more with a
  slash added).

Run it as ``python -m bench.routing [--requests 500] [--rounds 10] [--no-wait]``; figures go to
``bench/results/routing.json`` (``{name}_ms``, ``{name}_included_ms`` and
``{name}_saved_ms``).
"""

from __future__ import annotations

import statistics
import time
from datetime import date

from bench._batch import DS_ID, account_id
from bench._common import Figures, parser, print_figures, run
from bench._server import ADMIN_KEY, BenchServer

NAME = "routing"
REQUESTS, ROUNDS, WARM_UP = 500, 10, 50
SERVERS = {"": "querybatch", "_included": "bench._included_server"}


def _prepare(server: BenchServer) -> dict[str, str]:
    """A destination, transfer and backfill on ``server``; the paths to measure, by name."""
    from supermetrics import SupermetricsClient, TransferAccount, TransferSchedule

    sdk = SupermetricsClient(api_key=ADMIN_KEY, base_url=server.url, timeout=120)
    with server.client() as client:
        team = int(client.get("/whoami").raise_for_status().json()["team_id"])
    destination = sdk.destinations.create(
        team_id=team, type="DWH_DUCKDB", display_name="bench", fields={"path": "bench.duckdb"}
    )
    transfer = sdk.transfers.create(
        team_id=team,
        data_source_id=DS_ID,
        schema_id=1,
        destination_id=int(destination.id),
        display_name="bench routing",
        schedule=[TransferSchedule(run_interval="daily", run_hour=4, refresh_window=1)],
        accounts=[
            TransferAccount(account_id=account_id(0), data_source_username="ads.team@demo.example")
        ],
    ).transfer_id
    backfill = sdk.backfills.create(
        team_id=team,
        transfer_id=transfer,
        range_start=date(2026, 1, 1),
        range_end=date(2026, 1, 2),
    ).transfer_backfill_id
    return {
        "healthz": "/healthz",
        "whoami": "/whoami",
        "transfer": f"/teams/{team}/transfers/{transfer}",
        "backfill": f"/teams/{team}/backfills/{backfill}",
        "backfill_v2": f"/v2/teams/{team}/backfills/{backfill}",
        "logins_enterprise": "/enterprise/v2/ds/logins",
        "not_found": "/no/such/route",
    }


def _settle(server: BenchServer, timeout: float = 120.0) -> None:
    """Wait until the server is idle (the transfer's and the backfill's runs have ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cpu0 = server.cpu_seconds()
        time.sleep(1.0)
        if server.cpu_seconds() - cpu0 < 0.02:
            return
    raise RuntimeError(f"the server did not become idle in {timeout:.0f} s")


def _cpu_ms_per_request(server: BenchServer, path: str, requests: int) -> float:
    with server.client() as client:
        for _ in range(WARM_UP):
            client.get(path)
        cpu0 = server.cpu_seconds()
        for _ in range(requests):
            client.get(path)
        return 1000 * (server.cpu_seconds() - cpu0) / requests


def measure(requests: int, rounds: int) -> Figures:
    """Both servers, every path, ``rounds`` times interleaved; the medians."""
    spent: dict[str, list[float]] = {}
    servers = {suffix: BenchServer(module=module) for suffix, module in SERVERS.items()}
    try:
        paths: dict[str, dict[str, str]] = {}
        for suffix, server in servers.items():
            server.start()
            paths[suffix] = _prepare(server)
            with server.client() as client:
                for name, path in paths[suffix].items():
                    status = client.get(path).status_code
                    assert status == (404 if name == "not_found" else 200), (path, status)
            _settle(server)
        for _ in range(rounds):
            for name in paths[""]:
                for suffix, server in servers.items():
                    ms = _cpu_ms_per_request(server, paths[suffix][name], requests)
                    spent.setdefault(f"{name}{suffix}_ms", []).append(ms)
    finally:
        for server in servers.values():
            server.stop()
    figures: Figures = {key: statistics.median(values) for key, values in spent.items()}
    for name in paths[""]:
        # Each round's two figures were taken one after the other: their difference is the
        # least disturbed by what else the machine was doing.
        pairs = zip(spent[f"{name}_included_ms"], spent[f"{name}_ms"], strict=True)
        figures[f"{name}_saved_ms"] = statistics.median(b - a for b, a in pairs)
    figures["requests"] = requests
    figures["rounds"] = rounds
    return figures


def report(figures: Figures) -> None:
    """Print the figures: per route, flat, included and the difference."""
    rows: list[tuple[str, float, str]] = []
    for key in figures:
        if key.endswith("_saved_ms"):
            name = key.removesuffix("_saved_ms")
            rows.append((f"{name}_ms", figures[f"{name}_ms"], "server CPU per request, flat"))
            rows.append((f"{name}_included_ms", figures[f"{name}_included_ms"], "routers included"))
            rows.append((key, figures[key], ""))
    print_figures("Routing: server CPU per request (ms), idle embedded server", rows)


def main(argv: list[str] | None = None) -> Figures:
    """Parse the options and run the benchmark."""
    args = parser(NAME, __doc__)
    args.add_argument(
        "--requests", type=int, default=REQUESTS, help="per route and round (default %(default)s)"
    )
    args.add_argument("--rounds", type=int, default=ROUNDS, help="(default %(default)s)")
    args.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for a quiet machine first (a smoke test)",
    )
    ns = args.parse_args(argv)
    return run(
        NAME,
        ns.out,
        lambda: measure(ns.requests, ns.rounds),
        report,
        wait_for_quiet=not ns.no_wait,
    )


if __name__ == "__main__":
    main()
