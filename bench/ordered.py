"""What ordering and filtering in the engine cost per sub-query, against the same batch without.

The demo sources push filters and limits down but not ``order_rows``, so a batch whose
queries ask for ``order_rows`` is sorted by the engine (and a filter on a source without
pushdown is evaluated by it). Two batches of N distinct instant (L=0) sub-queries run at
concurrency C through one ``querybatch serve`` process on the embedded default: the plain
batch (the baseline), then the same sub-queries with ``order_rows``. Reported per batch:
sub-queries per second and server CPU milliseconds per sub-query.

Run it as ``python -m bench.ordered [--n 5000] [--c 50]``; figures go to
``bench/results/ordered.json``.
"""

from __future__ import annotations

from typing import Any

from bench._batch import batch_body, run_batch, server_env
from bench._common import Figures, parser, print_figures, ratio, run
from bench._server import BenchServer

NAME = "ordered"


def ordered_body(n: int, concurrency: int) -> dict[str, Any]:
    """The baseline batch, each query ordered by clicks (descending) then date."""
    body = batch_body(n, concurrency)
    for query in body["queries"]:
        query["order_rows"] = ["clicks desc", "date asc"]
    return body


def measure(n: int, concurrency: int) -> Figures:
    """Run the plain batch, then the ordered one, through one fresh server."""
    with BenchServer(server_env(concurrency, 0.0)) as server:
        plain = run_batch(server, batch_body(n, concurrency), n)
        ordered = run_batch(server, ordered_body(n, concurrency), n)
    return {
        "n": n,
        "concurrency": concurrency,
        "plain_subqueries_per_s": n / plain.makespan_s,
        "ordered_subqueries_per_s": n / ordered.makespan_s,
        "ordered_rate_to_plain": ratio(plain.makespan_s, ordered.makespan_s),
        "plain_cpu_ms_per_subquery": plain.run_cpu_s * 1000 / n,
        "ordered_cpu_ms_per_subquery": ordered.run_cpu_s * 1000 / n,
        "plain_succeeded": plain.succeeded,
        "ordered_succeeded": ordered.succeeded,
    }


def report(figures: Figures) -> None:
    """Print the figures of both batches."""
    print_figures(
        f"ordered: N={figures['n']:.0f} C={figures['concurrency']:.0f} L=0",
        [
            ("plain_subqueries_per_s", figures["plain_subqueries_per_s"], "baseline batch"),
            ("ordered_subqueries_per_s", figures["ordered_subqueries_per_s"], "order_rows"),
            ("ordered_rate_to_plain", figures["ordered_rate_to_plain"], "ordered / plain rate"),
            ("plain_cpu_ms_per_subquery", figures["plain_cpu_ms_per_subquery"], "after POST"),
            ("ordered_cpu_ms_per_subquery", figures["ordered_cpu_ms_per_subquery"], "after POST"),
            ("ordered_succeeded", figures["ordered_succeeded"], f"of {figures['n']:.0f}"),
        ],
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=5000, help="sub-queries (default %(default)s)")
    args.add_argument("--c", type=int, default=50, help="query_concurrency (default %(default)s)")
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.n, ns.c), report)


if __name__ == "__main__":
    main()
