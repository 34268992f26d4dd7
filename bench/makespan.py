"""How close a batch's makespan comes to the ideal: N sub-queries of latency L at concurrency C.

One batch of N distinct demo sub-queries, each taking L milliseconds in the connector, runs
at ``query_concurrency`` C through the API of a real ``querybatch serve`` process on the
embedded default (SQLite, in-process executor). Its makespan is the batch's ``end_time`` minus
its ``start_time`` as ``GET /query/batch/{id}`` reports them; the wall time from sending the
POST to seeing STOPPED is reported too.

Baselines measured in the same run: the ideal ``ceil(N / C) * L``, and the bare loop (the same
connector and requests under ``asyncio.Semaphore(C)``, nothing stored). ``efficiency`` is
ideal / measured, ``ratio_to_bare`` measured / bare.

Run it as ``python -m bench.makespan [--n 5000] [--c 50] [--latency-ms 50]``; figures go to
``bench/results/makespan.json``.
"""

from __future__ import annotations

import math

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

NAME = "makespan"
# The lead's targets: makespan / bare loop at most this, for (N, C, L in ms).
TARGETS = {(5000, 50, 50): 1.05, (50_000, 200, 50): 1.10}


def measure(
    n: int, concurrency: int, latency_ms: float, profile: Profiling | None = None
) -> Figures:
    """Run the bare loop, then the batch through a fresh server; every figure."""
    bare = bare_loop(subquery_specs(n), concurrency, latency_ms)
    with BenchServer(server_env(concurrency, latency_ms)) as server:
        run = run_batch(server, batch_body(n, concurrency), n, profile)
    ideal = math.ceil(n / concurrency) * latency_ms / 1000
    return {
        "n": n,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "makespan_s": run.makespan_s,
        "wall_s": run.wall_s,
        "post_s": run.post_s,
        "bare_makespan_s": bare.seconds,
        "ideal_makespan_s": ideal,
        "efficiency": ratio(ideal, run.makespan_s),
        "ratio_to_bare": ratio(run.makespan_s, bare.seconds),
        "bare_efficiency": ratio(ideal, bare.seconds),
        "bare_peak_concurrency": bare.peak_concurrency,
        "succeeded": run.succeeded,
        "cpu_ms_per_subquery": run.cpu_s * 1000 / n,
        "submit_cpu_ms_per_subquery": run.submit_cpu_s * 1000 / n,
        "main_thread_cpu_ms_per_subquery": run.main_thread_cpu_s * 1000 / n,
        "writer_thread_cpu_ms_per_subquery": run.busiest_thread_cpu_s * 1000 / n,
        "store_bytes_per_subquery": run.store_bytes / n,
        "store_file_bytes_per_subquery": run.store_file_bytes / n,
        "disk_write_bytes_per_subquery": run.disk_write_bytes / n,
        "store_query_rows_per_subquery": run.store_rows["queries"] / n,
        "store_chunk_rows_per_subquery": run.store_rows["result_chunks"] / n,
    }


def report(figures: Figures) -> None:
    """Print the figures with the target the lead aims at."""
    n, c = figures["n"], figures["concurrency"]
    bound = TARGETS.get((int(n), int(c), int(figures["latency_ms"])))
    verdict = "no target for this shape"
    if bound is not None:
        verdict = f"target <= {bound:.2f}: " + target(figures["ratio_to_bare"] <= bound)
    print_figures(
        f"makespan: N={n:.0f} C={c:.0f} L={figures['latency_ms']:.0f} ms",
        [
            ("makespan_s", figures["makespan_s"], "batch end_time - start_time (API)"),
            ("wall_s", figures["wall_s"], "POST sent -> STOPPED observed"),
            ("post_s", figures["post_s"], "POST /query/batch answered"),
            ("bare_makespan_s", figures["bare_makespan_s"], "bare loop, nothing stored"),
            ("ideal_makespan_s", figures["ideal_makespan_s"], "ceil(N/C) * L"),
            ("efficiency", figures["efficiency"], "ideal / makespan"),
            ("bare_efficiency", figures["bare_efficiency"], "ideal / bare"),
            ("ratio_to_bare", figures["ratio_to_bare"], f"makespan / bare; {verdict}"),
            ("succeeded", figures["succeeded"], f"of {n:.0f}"),
            ("cpu_ms_per_subquery", figures["cpu_ms_per_subquery"], "server CPU, submit included"),
            ("store_bytes_per_subquery", figures["store_bytes_per_subquery"], "live pages"),
            (
                "store_file_bytes_per_subquery",
                figures["store_file_bytes_per_subquery"],
                "SQLite file + WAL growth",
            ),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=5000, help="sub-queries (default %(default)s)")
    args.add_argument("--c", type=int, default=50, help="query_concurrency (default %(default)s)")
    args.add_argument(
        "--latency-ms", type=float, default=50.0, help="connector latency (default %(default)s)"
    )
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.n, ns.c, ns.latency_ms, profiling(ns)), report)


if __name__ == "__main__":
    main()
