"""Cost as the work grows: downloads of a batch of many sub-queries against one large result.

Part ``downloads``: one batch of N demo sub-queries (default 200,000) of 5 rows each (one
account and day each, ``demo_rows_per_day`` 5) runs on a fresh embedded server, then its
``GET /query/batch/{id}/download`` is read in each format (ndjson, csv, parquet), counting
bytes. The baseline, in the same server and run: a batch of one query holding as many rows
in a single result (one account, 1,000 days, ``demo_rows_per_day`` N * 5 / 1,000), downloaded
the same way. Reported per format: rows per second of each download, their ratio (many
small results over one large one: 1.0 means a download costs per row, not per sub-query),
server CPU per 1,000 rows, bytes, and the server's RSS growth (peak sampled every 20 ms
during the download minus the RSS just before).

Run it as ``python -m bench.scale [--parts downloads] [--download-subqueries 200000]``;
figures go to ``bench/results/scale.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from bench import results as results_bench
from bench._batch import batch_body, submit, wait_stopped
from bench._common import Figures, Profiling, parser, print_figures, profiling, ratio, run, target
from bench._server import BenchServer, RssSampler

NAME = "scale"
FORMATS = ("ndjson", "csv", "parquet")
ROWS_PER_SUBQUERY = 5
CONCURRENCY = 200
TARGET_RATIO, TARGET_RSS_MB = 0.8, 100.0


def _server_env() -> dict[str, str]:
    return {
        "QB_MAX_QUERY_CONCURRENCY": str(CONCURRENCY),
        "QB_ACCOUNT_CONCURRENCY": str(CONCURRENCY),
        "QB_WORKERS": str(CONCURRENCY),
        "QB_DEMO_LATENCY_MS": "0",
        "QB_MAX_BATCH_QUERIES": "1000000",
        "QB_RESULT_TTL": "86400",
    }


def _download(
    server: BenchServer, client: httpx.Client, batch_id: str, fmt: str
) -> tuple[float, float, int, float]:
    """Read the batch's download in ``fmt``: seconds, server CPU, bytes, RSS growth (MB)."""
    sampler = RssSampler(server)
    with sampler.running():
        before, cpu = server.rss_mb(), server.cpu_seconds()
        began, size = time.perf_counter(), 0
        with client.stream(
            "GET", f"/query/batch/{batch_id}/download", params={"format": fmt}
        ) as response:
            response.raise_for_status()
            for block in response.iter_bytes():
                size += len(block)
        seconds = time.perf_counter() - began
        cpu = server.cpu_seconds() - cpu
    return seconds, cpu, size, sampler.peak_mb - before


def measure_downloads(subqueries: int, profile: Profiling | None = None) -> Figures:
    """The many-small-results batch and the one-result baseline, each downloaded per format."""
    rows = subqueries * ROWS_PER_SUBQUERY
    figures: Figures = {"download_subqueries": subqueries, "download_rows": rows}
    many = batch_body(subqueries, CONCURRENCY, demo_rows_per_day=ROWS_PER_SUBQUERY)
    one = {"query_concurrency": 1, "timeout_minutes": 60, "queries": [results_bench.query(rows)]}
    with BenchServer(_server_env(), timeout=120) as server, server.client(1800) as client:
        batches = {"many": submit(client, many), "one": submit(client, one)}
        for batch_id in batches.values():
            wait_stopped(client, batch_id, poll=0.5)
        time.sleep(1.0)
        with server.profiled(profile):
            for fmt in FORMATS:
                for shape, batch_id in batches.items():
                    seconds, cpu, size, growth = _download(server, client, batch_id, fmt)
                    figures[f"{fmt}_{shape}_rows_per_s"] = rows / seconds
                    figures[f"{fmt}_{shape}_cpu_ms_per_1k_rows"] = 1e6 * cpu / rows
                    figures[f"{fmt}_{shape}_mb"] = size / 2**20
                    figures[f"{fmt}_{shape}_rss_growth_mb"] = growth
                figures[f"{fmt}_ratio"] = ratio(
                    figures[f"{fmt}_many_rows_per_s"], figures[f"{fmt}_one_rows_per_s"]
                )
    return figures


def report(figures: Figures) -> None:
    """Print the figures with the targets of the scale issue."""
    rows: list[tuple[str, float, str]] = []
    if "download_rows" in figures:
        for fmt in FORMATS:
            share, growth = figures[f"{fmt}_ratio"], figures[f"{fmt}_many_rss_growth_mb"]
            rows += [
                (f"{fmt}_many_rows_per_s", figures[f"{fmt}_many_rows_per_s"], ""),
                (f"{fmt}_one_rows_per_s", figures[f"{fmt}_one_rows_per_s"], "baseline"),
                (
                    f"{fmt}_ratio",
                    share,
                    f"target >= {TARGET_RATIO}: {target(share >= TARGET_RATIO)}",
                ),
                (
                    f"{fmt}_many_rss_growth_mb",
                    growth,
                    f"target < {TARGET_RSS_MB:.0f}: {target(growth < TARGET_RSS_MB)}",
                ),
                (f"{fmt}_many_cpu_ms_per_1k_rows", figures[f"{fmt}_many_cpu_ms_per_1k_rows"], ""),
                (f"{fmt}_many_mb", figures[f"{fmt}_many_mb"], ""),
            ]
        title = (
            f"scale: downloads of {figures['download_subqueries']:,.0f} sub-queries, "
            f"{figures['download_rows']:,.0f} rows"
        )
        print_figures(title, rows)


def main(argv: Sequence[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument(
        "--download-subqueries",
        type=int,
        default=200_000,
        help="sub-queries of the downloaded batch (default %(default)s)",
    )
    ns = args.parse_args(argv)

    def measure() -> Figures:
        return measure_downloads(ns.download_subqueries, profiling(ns))

    return run(NAME, ns.out, measure, report)


if __name__ == "__main__":
    main()
