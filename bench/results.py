"""Reading a million-row result through the API: rows per second and the server's memory.

One query of 1,000,000 rows (demo ``DEMO_ADS``: one account, 1,000 days, 1,000 rows a day
through ``settings.demo_rows_per_day``, ``max_rows=1000000``) runs to SUCCESS in a real
``querybatch serve`` process (embedded default). Its rows are then read through the API:

- as CSV, one streamed ``GET /query/data/csv?schedule_id=...``;
- as JSON pages of 100,000 rows (``offset_start``/``offset_end``), following
  ``meta.paginate.next`` from the first page to the last.

Reported: rows per second of each read (the client parses JSON pages with orjson and counts
CSV lines), and the server's RSS growth: the peak sampled every 20 ms during the reads minus
the RSS just before reading. Baseline measured in the same run: the demo connector producing
the same rows alone, in-process (rows per second). Also shown: how fast the engine ran the
query (rows generated and stored per second) and the store's bytes per result row.

Run it as ``python -m bench.results [--rows 1000000] [--page 100000]``; figures go to
``bench/results/results.json``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import orjson

from bench._batch import DS_ID, FIRST_DAY, epoch, submit, wait_stopped
from bench._common import (
    Figures,
    Profiling,
    parser,
    print_figures,
    profiling,
    ratio,
    run,
    run_async,
    target,
)
from bench._server import BenchServer, RssSampler

NAME = "results"
FIELDS = ("date", "campaign_id", "impressions", "clicks")
DAYS = 1000
TARGET_ROWS_PER_S, TARGET_RSS_MB = 200_000.0, 100.0


def query(rows: int) -> dict[str, Any]:
    """The data query of ``rows`` rows: one account, 1,000 days, rows / 1,000 rows a day."""
    return {
        "ds_id": DS_ID,
        "ds_accounts": ["ads-0001"],
        "fields": list(FIELDS),
        "start_date": FIRST_DAY.isoformat(),
        "end_date": (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat(),
        "max_rows": rows,
        "settings": {"demo_rows_per_day": -(-rows // DAYS)},
    }


async def _demo_alone(rows: int) -> tuple[int, float]:
    from querybatch.connectors.demo import demo_sources
    from querybatch.domain.query import QuerySpec
    from querybatch.engine.executors.fetch import fetch_request

    q = query(rows)
    spec = QuerySpec.model_validate(
        {
            "ds_id": q["ds_id"],
            "accounts": q["ds_accounts"],
            "start_date": q["start_date"],
            "end_date": q["end_date"],
            "fields": q["fields"],
            "max_rows": q["max_rows"],
            "settings": q["settings"],
        }
    )
    connector = demo_sources()[DS_ID]
    began = time.perf_counter()
    produced = 0
    async for chunk in connector.fetch(fetch_request(spec)):
        produced += len(chunk)
    return produced, time.perf_counter() - began


def read_csv(client: httpx.Client, schedule_id: str) -> tuple[int, int, float]:
    """Stream the CSV; (data rows, bytes, seconds)."""
    began = time.perf_counter()
    lines = size = 0
    with client.stream("GET", "/query/data/csv", params={"schedule_id": schedule_id}) as answer:
        answer.raise_for_status()
        for block in answer.iter_bytes(1 << 16):
            lines += block.count(b"\n")
            size += len(block)
    return lines - 1, size, time.perf_counter() - began  # minus the header line


def read_json_pages(client: httpx.Client, schedule_id: str, page: int) -> tuple[int, int, float]:
    """Follow ``meta.paginate.next`` from the first page; (rows, pages, seconds)."""
    began = time.perf_counter()
    url: str | None = "/query/data/json"
    params: dict[str, Any] | None = {
        "schedule_id": schedule_id,
        "offset_start": 0,
        "offset_end": page - 1,
    }
    rows = pages = 0
    while url:
        answer = client.get(url, params=params)
        answer.raise_for_status()
        body = orjson.loads(answer.content)
        rows += len(body["data"]) - 1  # data[0] is the header row
        pages += 1
        url, params = body["meta"].get("paginate", {}).get("next"), None
    return rows, pages, time.perf_counter() - began


def measure(rows: int, page: int, profile: Profiling | None = None) -> Figures:
    """Demo alone, then the query through a fresh server and both reads; every figure."""
    alone_rows, alone_s = run_async(_demo_alone(rows))
    with BenchServer({"QB_RESULT_TTL": "7200"}) as server, server.client(600) as client:
        bytes_before, file_before = server.store_bytes(), server.store_file_bytes()
        body = {"query_concurrency": 1, "timeout_minutes": 60, "queries": [query(rows)]}
        batch_id = submit(client, body)
        batch = wait_stopped(client, batch_id, poll=0.1)
        run_s = epoch(batch["end_time"]) - epoch(batch["start_time"])
        schedule_id = f"{batch_id}_query_1"
        store_bytes = server.store_bytes() - bytes_before
        file_bytes = server.store_file_bytes() - file_before
        time.sleep(0.5)
        sampler = RssSampler(server)
        with sampler.running(), server.profiled(profile):
            rss_before = sampler.peak_mb
            csv_rows, csv_bytes, csv_s = read_csv(client, schedule_id)
            csv_peak = sampler.peak_mb
            sampler.reset()
            json_rows, pages, json_s = read_json_pages(client, schedule_id, page)
            json_peak = sampler.peak_mb
    growth = max(csv_peak, json_peak) - rss_before
    return {
        "rows": rows,
        "page_rows": page,
        "csv_rows": csv_rows,
        "csv_rows_per_s": csv_rows / csv_s,
        "csv_mb_per_s": csv_bytes / csv_s / 2**20,
        "csv_seconds": csv_s,
        "json_rows": json_rows,
        "json_pages": pages,
        "json_rows_per_s": json_rows / json_s,
        "json_seconds": json_s,
        "demo_alone_rows_per_s": alone_rows / alone_s,
        "csv_ratio_to_demo_alone": ratio(csv_rows / csv_s, alone_rows / alone_s),
        "engine_rows_per_s": rows / run_s,
        "rss_before_mb": rss_before,
        "csv_rss_growth_mb": csv_peak - rss_before,
        "json_rss_growth_mb": json_peak - rss_before,
        "rss_growth_mb": growth,
        "store_bytes_per_row": store_bytes / rows,
        "store_file_bytes_per_row": file_bytes / rows,
    }


def report(figures: Figures) -> None:
    """Print the figures with the targets the lead aims at."""
    csv_rate, growth = figures["csv_rows_per_s"], figures["rss_growth_mb"]
    print_figures(
        f"results: {figures['rows']:,.0f} rows, JSON pages of {figures['page_rows']:,.0f}",
        [
            (
                "csv_rows_per_s",
                csv_rate,
                f"target >= {TARGET_ROWS_PER_S:,.0f}: {target(csv_rate >= TARGET_ROWS_PER_S)}",
            ),
            ("csv_mb_per_s", figures["csv_mb_per_s"], ""),
            ("json_rows_per_s", figures["json_rows_per_s"], f"{figures['json_pages']:.0f} pages"),
            ("demo_alone_rows_per_s", figures["demo_alone_rows_per_s"], "in-process baseline"),
            ("csv_ratio_to_demo_alone", figures["csv_ratio_to_demo_alone"], ""),
            ("engine_rows_per_s", figures["engine_rows_per_s"], "query run: generate + store"),
            ("rss_before_mb", figures["rss_before_mb"], "server RSS before reading"),
            ("csv_rss_growth_mb", figures["csv_rss_growth_mb"], "peak during CSV - before"),
            ("json_rss_growth_mb", figures["json_rss_growth_mb"], "peak during JSON - before"),
            (
                "rss_growth_mb",
                growth,
                f"target < {TARGET_RSS_MB:.0f}: {target(growth < TARGET_RSS_MB)}",
            ),
            ("store_bytes_per_row", figures["store_bytes_per_row"], "live pages"),
            ("store_file_bytes_per_row", figures["store_file_bytes_per_row"], "file + WAL"),
            ("csv_rows", figures["csv_rows"], "rows read as CSV"),
            ("json_rows", figures["json_rows"], "rows read as JSON"),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--rows", type=int, default=1_000_000, help="rows (default %(default)s)")
    args.add_argument(
        "--page", type=int, default=100_000, help="JSON page size (default %(default)s)"
    )
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.rows, ns.page, profiling(ns)), report)


if __name__ == "__main__":
    main()
