"""Cost as the work grows: batches of 1,000 to 1,000,000 sub-queries, and downloads of many.

Part ``sizes``: for each size N (default 1,000, 10,000, 50,000, 200,000 and 1,000,000), one
batch of N distinct demo sub-queries (latency 0, ``query_concurrency`` 200) on a fresh
embedded server: how long the POST took to answer, sub-queries per second over the batch's
makespan, server CPU per sub-query (the POST's included), and the server's peak RSS
(sampled every 20 ms from before the POST to the batch's end) and RSS once it ended. The
baseline is the 10,000 batch of the same run: every other size's per-sub-query figures are
shown as a ratio to it (flat cost: within 20%).

Part ``restart``: a store holding L live sub-queries (default 1,000,000: one batch scheduled
for tomorrow, stored through the API) and E expired ones (default 1,000,000, in batches of
1,000 that stopped ten days ago, each sub-query with a result of 5 rows: written straight
into the SQLite file while the server is stopped, as a weekend of finished work would leave
it). Reported: seconds from starting ``querybatch serve`` to ``/healthz`` answering 200 (its
Python start included; the baseline is the same start on an empty store), seconds until
background expiry deleted every expired sub-query, and the store file's size before and
after (write-ahead log included). Then the clean-up's effect on work: E more sub-queries are
written as ended just now, and a batch of 10,000 runs; then they are made ten days old and
another batch of 10,000 runs while they are being deleted; three such pairs in turn, and the
ratio of the makespans' sums (target: under 1.05; the medians are shown). Every batch is the
first after a start of the server, on a store of about the same size, so that all meet
caches as cold and indexes as large.

Part ``downloads``: one batch of N demo sub-queries (default 200,000) of 5 rows each (one
account and day each, ``demo_rows_per_day`` 5) runs on a fresh embedded server, then its
``GET /query/batch/{id}/download`` is read in each format (ndjson, csv, parquet), counting
bytes, once its rows are packed for downloads (reported: how long that took after the batch
ended, and what it added to the store file). The baseline, in the same server and run: a
batch of one query holding as many rows in a single result (one account, 1,000 days,
``demo_rows_per_day`` N * 5 / 1,000), downloaded the same way. Reported per format: rows per
second of each download, their ratio (many small results over one large one: 1.0 means a
download costs per row, not per sub-query), server CPU per 1,000 rows, bytes, and the
server's RSS growth (peak sampled every 20 ms during the download minus the RSS just before).

Run it as ``python -m bench.scale [--parts sizes,restart,downloads] [--sizes 1000,10000,...]
[--live 1000000] [--expired 1000000] [--download-subqueries 200000]``;
figures go to ``bench/results/scale.json``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from bench import results as results_bench
from bench._batch import batch_body, run_batch, submit, wait_stopped
from bench._common import Figures, Profiling, parser, print_figures, profiling, ratio, run, target
from bench._server import BenchServer, RssSampler, Sampler

NAME = "scale"
FORMATS = ("ndjson", "csv", "parquet")
ROWS_PER_SUBQUERY = 5
CONCURRENCY = 200
TARGET_RATIO, TARGET_RSS_MB = 0.8, 100.0
SIZES = (1000, 10_000, 50_000, 200_000, 1_000_000)
BASE_SIZE = 10_000
TARGET_FLAT = 1.2  # per-sub-query cost within 20% of the 10,000 batch's
TARGET_POST_S_PER_100K = 1.0
TARGET_BATCH_RSS_MB = 200.0
TARGET_RESTART_S, TARGET_CLEANUP_EFFECT = 5.0, 1.05
EXPIRED_BATCH = 1000  # sub-queries per expired batch
EFFECT_BATCH = 10_000
EFFECT_RUNS = 3  # pairs of batches, without and with the clean-up, one after the other


def _server_env() -> dict[str, str]:
    return {
        "QB_MAX_QUERY_CONCURRENCY": str(CONCURRENCY),
        "QB_ACCOUNT_CONCURRENCY": str(CONCURRENCY),
        "QB_WORKERS": str(CONCURRENCY),
        "QB_DEMO_LATENCY_MS": "0",
        "QB_MAX_BATCH_QUERIES": "1000000",
        "QB_RESULT_TTL": "86400",
    }


def measure_sizes(sizes: Sequence[int]) -> Figures:
    """One batch of each size on a fresh server; per size, the figures of the table."""
    figures: Figures = {}
    for n in sizes:
        with BenchServer(_server_env(), timeout=120) as server:
            sampler = RssSampler(server)
            storing = StoringWatch(server.db_path)
            with sampler.running(), storing.running():
                run_ = run_batch(server, batch_body(n, CONCURRENCY), n)
                peak = sampler.peak_mb
            figures |= {
                f"n{n}_post_s": run_.post_s,
                f"n{n}_stored_s": max(storing.last_seen_s, run_.post_s),
                f"n{n}_post_s_per_100k": run_.post_s * 100_000 / n,
                f"n{n}_subqueries_per_s": ratio(n, run_.makespan_s),
                f"n{n}_cpu_ms_per_subquery": run_.cpu_s * 1000 / n,
                f"n{n}_peak_rss_mb": peak,
                f"n{n}_rss_after_mb": server.rss_mb(),
                f"n{n}_succeeded": run_.succeeded,
            }
    if BASE_SIZE in sizes:
        base_rate = figures[f"n{BASE_SIZE}_subqueries_per_s"]
        base_cpu = figures[f"n{BASE_SIZE}_cpu_ms_per_subquery"]
        for n in sizes:
            figures[f"n{n}_rate_to_base"] = ratio(figures[f"n{n}_subqueries_per_s"], base_rate)
            figures[f"n{n}_cpu_to_base"] = ratio(figures[f"n{n}_cpu_ms_per_subquery"], base_cpu)
    return figures


class StoringWatch(Sampler):
    """When a batch's sub-queries were all stored: the last moment, from the start of the
    watch, at which the store still held a batch stored in part (the answer of a batch of
    more than ``QB_BATCH_STORE_SLICE`` sub-queries comes before the rest are stored)."""

    def __init__(self, db_path: Path, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.db_path = db_path
        self.last_seen_s = 0.0
        self._started = 0.0

    def begin(self) -> None:
        self._started = time.perf_counter()

    def sample(self) -> None:
        # A connection per sample: one is bound to the thread that opened it.
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(sqlite3.connect(self.db_path, timeout=5)) as db,
        ):
            (partly,) = db.execute(
                "SELECT count(*) FROM batches WHERE n_stored IS NOT NULL"
            ).fetchone()
            if partly:
                self.last_seen_s = time.perf_counter() - self._started + self.interval


def _expire_into(
    db_path: Path, template_batch: str, expired: int, tag: str, ended: float | None = None
) -> None:
    """Write ``expired`` sub-queries (copies of the template batch's), in stopped batches of
    ``EXPIRED_BATCH`` that ended ten days ago (or at ``ended``), each with a result of five
    rows."""
    ended = time.time() - 10 * 86400 if ended is None else ended
    payload = b'[["2000-01-01","c1",1,2],["2000-01-01","c2",3,4],["2000-01-01","c3",5,6],'
    payload += b'["2000-01-01","c4",7,8],["2000-01-01","c5",9,10]]'
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("BEGIN")
        source = f"SELECT * FROM queries WHERE batch_id = '{template_batch}' AND position <= ?"
        db.execute(
            "INSERT INTO results (id, total_rows, total_columns, run_seconds, created_at) "
            f"SELECT '{tag}' || id, 5, 4, 0.01, ? FROM ({source})",
            (ended, expired),
        )
        db.execute(
            "INSERT INTO result_chunks (result_id, seq, row_count, payload, created_at) "
            f"SELECT '{tag}' || id, 0, 5, ?, ? FROM ({source})",
            (payload, ended, expired),
        )
        batch_of = f"printf('qrb_{tag}%08d', (position - 1) / {EXPIRED_BATCH})"
        db.execute(
            "INSERT INTO batches (id, kind, account, key_id, status, settings, "
            "query_concurrency, timeout_seconds, created_at, schedule_time, start_time, "
            "end_time, query_amount, n_queued, n_running, n_success, n_failure, n_stopped) "
            f"SELECT DISTINCT {batch_of}, 'batch', account, 'bench', 'STOPPED', '{{}}', 50, "
            f"3600, ?, ?, ?, ?, {EXPIRED_BATCH}, 0, 0, {EXPIRED_BATCH}, 0, 0 FROM ({source})",
            (ended, ended, ended, ended, expired),
        )
        db.execute(
            "INSERT INTO queries (account, schedule_id, batch_id, position, status, ds_id, "
            "spec, fingerprint, created_at, start_time, end_time, attempt, result_id, "
            f"cache_used) SELECT account, '{tag}' || schedule_id, {batch_of}, position, "
            f"'SUCCESS', ds_id, spec, fingerprint, ?, ?, ?, 1, '{tag}' || id, 0 FROM ({source})",
            (ended, ended, ended, expired),
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _wait_packed(db_path: Path, batch_id: str, timeout: float = 300.0) -> None:
    """Return once the stopped batch's rows are packed for its downloads (batch_packs)."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        while db.execute(
            "SELECT coalesce(packed_through, 0) < query_amount FROM batches WHERE id = ?",
            (batch_id,),
        ).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{batch_id} not packed after {timeout} s")
            time.sleep(0.1)


def _wait_stored(db_path: Path, batch_id: str) -> None:
    """Return once every sub-query of the batch is stored."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        while db.execute(
            "SELECT n_stored FROM batches WHERE id = ? AND n_stored IS NOT NULL", (batch_id,)
        ).fetchone():
            time.sleep(0.2)


def _count(db_path: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _until_file_settles(server: BenchServer, quiet_s: float = 5.0, limit_s: float = 600) -> float:
    """Wait until the store's file (and log) stopped shrinking for ``quiet_s``; that moment."""
    deadline = time.perf_counter() + limit_s
    size, since = server.store_file_bytes(), time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        now_size = server.store_file_bytes()
        if now_size < size:
            size, since = now_size, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            break
    return since


def _timed_start(server: BenchServer) -> float:
    began = time.perf_counter()
    server.start()
    return time.perf_counter() - began


def _makespan(server: BenchServer, n: int, first_day: date) -> float:
    """The makespan of a batch of ``n`` sub-queries from ``first_day`` on (distinct days, so
    that no result of another batch answers it)."""
    return run_batch(server, batch_body(n, CONCURRENCY, first_day=first_day), n).makespan_s


def measure_restart(live: int, expired: int, effect_runs: int = EFFECT_RUNS) -> Figures:
    """Restart on a store of ``live`` + ``expired`` sub-queries; the clean-up's cost to work."""
    env = _server_env() | {"QB_RESULT_TTL": "86400", "QB_SWEEP_SECONDS": "5"}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    figures: Figures = {"restart_live": live, "restart_expired": expired}
    with BenchServer(env, timeout=600) as server:
        figures["restart_empty_s"] = _timed_start_again(server)
        with server.client(1800) as client:
            body = batch_body(max(live, expired, EFFECT_BATCH), CONCURRENCY)
            body["schedule_time"] = tomorrow
            template = submit(client, body)
        _wait_stored(server.db_path, template)  # the rest are stored behind the answer
        server.stop()
        _expire_into(server.db_path, template, expired, "e1")
        if live < max(live, expired, EFFECT_BATCH):
            with contextlib.closing(sqlite3.connect(server.db_path, isolation_level=None)) as db:
                db.execute(
                    "DELETE FROM queries WHERE batch_id = ? AND position > ?", (template, live)
                )
        figures["restart_file_mb_before"] = server.store_file_bytes() / 2**20
        figures["restart_s"] = _timed_start(server)
        began = time.perf_counter()
        while _count(server.db_path, "queries") > live:
            time.sleep(0.5)
        figures["restart_cleanup_s"] = time.perf_counter() - began
        figures["restart_space_s"] = _until_file_settles(server) - began
        figures["restart_file_mb_after"] = server.store_file_bytes() / 2**20
        # The clean-up beside work: the first batch after a start, on a store holding E more
        # sub-queries that ended just now, then on the same store once they have expired
        # (caches as cold, and the store as large, both times).
        server.stop()
        _expire_into(server.db_path, template, expired, "e2", ended=time.time())
        quiet, busy = [], []
        # Two years apart: 10,000 sub-queries span 400 days of 25 accounts (the live batch's
        # and the expired ones' days end in 2109, so none of them answers these).
        years = iter(range(2110, 2200, 2))
        for _ in range(effect_runs):  # a 10,000 batch's makespan alone varies by 10%
            _end_e2(server, time.time())
            server.start()
            quiet.append(_makespan(server, EFFECT_BATCH, date(next(years), 1, 1)))
            _end_e2(server, time.time() - 10 * 86400)
            server.start()
            busy.append(_makespan(server, EFFECT_BATCH, date(next(years), 1, 1)))
        figures["cleanup_quiet_makespan_s"] = statistics.median(quiet)
        figures["cleanup_busy_makespan_s"] = statistics.median(busy)
        busy_left = _count(server.db_path, "queries") - live - 2 * effect_runs * EFFECT_BATCH
        figures["cleanup_left_after_busy_batch"] = busy_left
        figures["cleanup_effect_runs"] = effect_runs
        figures["cleanup_effect"] = ratio(sum(busy), sum(quiet))
    return figures


def _end_e2(server: BenchServer, end_time: float) -> None:
    """Stop the server and make the second set of finished batches end at ``end_time``."""
    server.stop()
    with contextlib.closing(sqlite3.connect(server.db_path, isolation_level=None)) as db:
        db.execute("UPDATE batches SET end_time = ? WHERE id LIKE 'qrb_e2%'", (end_time,))


def _timed_start_again(server: BenchServer) -> float:
    """The server's start on its store as it is: stopped, then started and timed."""
    server.stop()
    return _timed_start(server)


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
        stopped, before = time.perf_counter(), server.store_file_bytes()
        _wait_packed(server.db_path, batches["many"])
        figures["download_packed_s"] = time.perf_counter() - stopped
        figures["download_packs_mb"] = (server.store_file_bytes() - before) / 2**20
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
    sizes = sorted(int(k[1:].split("_")[0]) for k in figures if k.endswith("_post_s"))
    if sizes:
        table: list[tuple[str, float, str]] = []
        for n in sizes:
            post, peak = figures[f"n{n}_post_s"], figures[f"n{n}_peak_rss_mb"]
            bound = TARGET_POST_S_PER_100K * max(1.0, n / 100_000)
            table += [
                (
                    f"n{n}_post_s",
                    post,
                    f"{figures[f'n{n}_post_s_per_100k']:.2f} s per 100k; target <= {bound:.1f} s: "
                    + target(post <= bound),
                ),
                (
                    f"n{n}_stored_s",
                    figures.get(f"n{n}_stored_s", post),
                    "every sub-query stored, from the POST on",
                ),
                (f"n{n}_subqueries_per_s", figures[f"n{n}_subqueries_per_s"], ""),
                (f"n{n}_cpu_ms_per_subquery", figures[f"n{n}_cpu_ms_per_subquery"], ""),
                (
                    f"n{n}_peak_rss_mb",
                    peak,
                    f"target < {TARGET_BATCH_RSS_MB:.0f}: {target(peak < TARGET_BATCH_RSS_MB)}",
                ),
                (f"n{n}_rss_after_mb", figures[f"n{n}_rss_after_mb"], ""),
            ]
            if f"n{n}_rate_to_base" in figures:
                rate, cpu = figures[f"n{n}_rate_to_base"], figures[f"n{n}_cpu_to_base"]
                flat = rate >= 1 / TARGET_FLAT and cpu <= TARGET_FLAT
                table.append(
                    (
                        f"n{n}_rate_to_base",
                        rate,
                        f"CPU/sub-query {cpu:.2f} of the 10k batch's; flat within 20%: "
                        + target(flat),
                    )
                )
        print_figures("scale: batch sizes (latency 0, query_concurrency 200)", table)
    if "restart_s" in figures:
        restart, effect = figures["restart_s"], figures["cleanup_effect"]
        print_figures(
            f"scale: restart with {figures['restart_live']:,.0f} live and "
            f"{figures['restart_expired']:,.0f} expired sub-queries",
            [
                ("restart_empty_s", figures["restart_empty_s"], "baseline: an empty store"),
                (
                    "restart_s",
                    restart,
                    f"to /healthz 200; target <= {TARGET_RESTART_S}: "
                    + target(restart <= TARGET_RESTART_S),
                ),
                ("restart_cleanup_s", figures["restart_cleanup_s"], "until every one expired"),
                ("restart_space_s", figures["restart_space_s"], "until the file stopped shrinking"),
                ("restart_file_mb_before", figures["restart_file_mb_before"], "file + WAL"),
                ("restart_file_mb_after", figures["restart_file_mb_after"], "file + WAL"),
                ("cleanup_busy_makespan_s", figures["cleanup_busy_makespan_s"], "with it, median"),
                ("cleanup_quiet_makespan_s", figures["cleanup_quiet_makespan_s"], "without it"),
                (
                    "cleanup_effect",
                    effect,
                    f"target < {TARGET_CLEANUP_EFFECT}: {target(effect < TARGET_CLEANUP_EFFECT)}",
                ),
                (
                    "cleanup_left_after_busy_batch",
                    figures["cleanup_left_after_busy_batch"],
                    "expired sub-queries left after the last (0: they outlasted the clean-up)",
                ),
            ],
        )
    rows: list[tuple[str, float, str]] = []
    if "download_rows" in figures:
        rows += [
            (
                "download_packed_s",
                figures["download_packed_s"],
                "from the batch's end until its rows were packed",
            ),
            (
                "download_packs_mb",
                figures["download_packs_mb"],
                "what the packs added to the store",
            ),
        ]
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
    args.add_argument(
        "--parts",
        default="sizes,restart,downloads",
        help="what to measure, comma-separated: sizes, restart, downloads (default %(default)s)",
    )
    args.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="batch sizes of the sizes part (default %(default)s)",
    )
    args.add_argument("--live", type=int, default=1_000_000, help="restart: live sub-queries")
    args.add_argument("--expired", type=int, default=1_000_000, help="restart: expired ones")
    ns = args.parse_args(argv)
    parts = set(ns.parts.split(","))

    def measure() -> Figures:
        figures: Figures = {}
        if "sizes" in parts:
            figures |= measure_sizes([int(n) for n in ns.sizes.split(",")])
        if "restart" in parts:
            figures |= measure_restart(ns.live, ns.expired)
        if "downloads" in parts:
            figures |= measure_downloads(ns.download_subqueries, profiling(ns))
        return figures

    return run(NAME, ns.out, measure, report)


if __name__ == "__main__":
    main()
