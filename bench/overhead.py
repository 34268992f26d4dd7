"""The engine's cost per sub-query: a batch of instant (L=0) sub-queries through a real server.

One batch of N distinct demo sub-queries with no connector latency runs at concurrency C
through the API of a ``querybatch serve`` process on the embedded default, so what is
measured is the engine itself: claiming, dispatching, recording and storing every result.
Reported: sub-queries per second (N over the batch's ``end_time - start_time``), the server
process's CPU milliseconds per sub-query (psutil ``cpu_times`` from sending the POST to
seeing STOPPED, all threads; the share spent answering the POST is shown separately), the
SQLite growth per sub-query, and the bare loop's rate (the same connector and requests under
``asyncio.Semaphore(C)``, nothing stored) measured in the same run.

Run it as ``python -m bench.overhead [--n 20000] [--c 50]``; figures go to
``bench/results/overhead.json``.
"""

from __future__ import annotations

from bench._bare import bare_loop
from bench._batch import batch_body, run_batch, server_env, subquery_specs
from bench._common import (
    Figures,
    Profiling,
    parser,
    print_figures,
    profiling,
    ratio,
    run,
    target,
)
from bench._server import BenchServer

NAME = "overhead"
TARGET_RATE = 2000.0
TARGET_CPU_MS = 0.5


def measure(n: int, concurrency: int, profile: Profiling | None = None) -> Figures:
    """Run the bare loop, then the batch through a fresh server; every figure."""
    bare = bare_loop(subquery_specs(n), concurrency, 0.0)
    with BenchServer(server_env(concurrency, 0.0)) as server:
        run = run_batch(server, batch_body(n, concurrency), n, profile)
    rate = n / run.makespan_s
    return {
        "n": n,
        "concurrency": concurrency,
        "subqueries_per_s": rate,
        "wall_subqueries_per_s": n / run.wall_s,
        "bare_subqueries_per_s": bare.per_second,
        "ratio_to_bare": ratio(rate, bare.per_second),
        "cpu_ms_per_subquery": run.cpu_s * 1000 / n,
        "submit_cpu_ms_per_subquery": run.submit_cpu_s * 1000 / n,
        "main_thread_cpu_ms_per_subquery": run.main_thread_cpu_s * 1000 / n,
        "writer_thread_cpu_ms_per_subquery": run.busiest_thread_cpu_s * 1000 / n,
        "run_cpu_ms_per_subquery": run.run_cpu_s * 1000 / n,
        "bare_ms_per_subquery": bare.seconds * 1000 / n,
        "makespan_s": run.makespan_s,
        "post_s": run.post_s,
        "succeeded": run.succeeded,
        "store_bytes_per_subquery": run.store_bytes / n,
        "store_file_bytes_per_subquery": run.store_file_bytes / n,
        "disk_write_bytes_per_subquery": run.disk_write_bytes / n,
        "store_query_rows_per_subquery": run.store_rows["queries"] / n,
        "store_result_rows_per_subquery": run.store_rows["results"] / n,
        "store_chunk_rows_per_subquery": run.store_rows["result_chunks"] / n,
        "result_rows_per_subquery": bare.rows / n,
    }


def report(figures: Figures) -> None:
    """Print the figures with the targets the lead aims at."""
    rate, cpu = figures["subqueries_per_s"], figures["cpu_ms_per_subquery"]
    print_figures(
        f"overhead: N={figures['n']:.0f} C={figures['concurrency']:.0f} L=0",
        [
            (
                "subqueries_per_s",
                rate,
                f"batch end - start; target >= {TARGET_RATE:,.0f}: {target(rate >= TARGET_RATE)}",
            ),
            ("wall_subqueries_per_s", figures["wall_subqueries_per_s"], "POST -> STOPPED seen"),
            ("bare_subqueries_per_s", figures["bare_subqueries_per_s"], "bare loop"),
            ("ratio_to_bare", figures["ratio_to_bare"], "engine rate / bare rate"),
            (
                "cpu_ms_per_subquery",
                cpu,
                f"server CPU; target < {TARGET_CPU_MS}: {target(cpu < TARGET_CPU_MS)}",
            ),
            ("submit_cpu_ms_per_subquery", figures["submit_cpu_ms_per_subquery"], "of which POST"),
            (
                "main_thread_cpu_ms_per_subquery",
                figures["main_thread_cpu_ms_per_subquery"],
                "after POST: event loop thread",
            ),
            (
                "writer_thread_cpu_ms_per_subquery",
                figures["writer_thread_cpu_ms_per_subquery"],
                "after POST: busiest other thread (store writer)",
            ),
            ("bare_ms_per_subquery", figures["bare_ms_per_subquery"], "bare loop, wall"),
            ("store_bytes_per_subquery", figures["store_bytes_per_subquery"], "live pages"),
            (
                "store_file_bytes_per_subquery",
                figures["store_file_bytes_per_subquery"],
                "SQLite file + WAL growth",
            ),
            (
                "disk_write_bytes_per_subquery",
                figures["disk_write_bytes_per_subquery"],
                "written to storage (WAL + checkpoints)",
            ),
            ("succeeded", figures["succeeded"], f"of {figures['n']:.0f}"),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=20_000, help="sub-queries (default %(default)s)")
    args.add_argument("--c", type=int, default=50, help="query_concurrency (default %(default)s)")
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.n, ns.c, profiling(ns)), report)


if __name__ == "__main__":
    main()
