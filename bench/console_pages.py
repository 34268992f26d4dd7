"""What the console's batch page asks of a batch of 200,000 sub-queries: one request at a time.

A ``querybatch serve`` process (embedded default) runs a batch of N demo sub-queries (default
200,000, latency 0) in which two of the 25 accounts fail, until it stops. Then one client asks
each of these, REQUESTS times in a row, and the latency of each answer is taken:

- ``page``: ``GET /query/batch/{id}/status`` of 100 from the start (the poll lane; baseline);
- ``page_deep``: the same at offset 150,000;
- ``status``: a page of FAILURE sub-queries; ``status_deep``: SUCCESS at offset 150,000;
- ``account``: a page of one account's sub-queries (8,000 of them);
- ``date``: the sub-queries whose range holds one day (one per account, spread over the batch);
- ``failures``: ``GET /query/batch/{id}/failures``, the failure summary.

Reported per request: median and p95 latency (ms). Run it as ``python -m bench.console_pages
[--n 200000] [--requests 50]``; figures go to ``bench/results/console_pages.json``.
"""

from __future__ import annotations

import time

import httpx

from bench._batch import account_id, batch_body, server_env, submit, wait_stopped
from bench._common import Figures, parser, percentile, print_figures, run
from bench._server import BenchServer

NAME = "console_pages"
N, REQUESTS, CONCURRENCY = 200_000, 50, 50
FAILING = (account_id(2), account_id(6))  # ads-0003, ads-0007
DEEP = 150_000


def _requests(batch_id: str) -> dict[str, str]:
    """The batch page's requests, by name."""
    status = f"/query/batch/{batch_id}/status?limit=100"
    return {
        "page": status,
        "page_deep": f"{status}&offset={DEEP}",
        "status": f"{status}&status=FAILURE",
        "status_deep": f"{status}&status=SUCCESS&offset={DEEP}",
        "account": f"{status}&account={account_id(6)}",
        "date": f"{status}&date=2000-06-01",
        "failures": f"/query/batch/{batch_id}/failures",
    }


def _time(client: httpx.Client, path: str, requests: int) -> list[float]:
    """Latency (ms) of ``requests`` requests of ``path``, one after the other."""
    client.get(path).raise_for_status()  # warm
    took = []
    for _ in range(requests):
        began = time.perf_counter()
        client.get(path).raise_for_status()
        took.append((time.perf_counter() - began) * 1000)
    return took


def measure(n: int, requests: int) -> Figures:
    """Run the batch to its end, then time each request of the batch page."""
    env = server_env(CONCURRENCY, 0.0)
    with BenchServer(env, timeout=120.0) as server, server.client(timeout=600.0) as client:
        began = time.perf_counter()
        batch_id = submit(
            client, batch_body(n, CONCURRENCY, demo_latency_ms=0, demo_fail_accounts=FAILING)
        )
        batch = wait_stopped(client, batch_id, poll=0.5)
        figures: Figures = {
            "n": n,
            "requests": requests,
            "batch_seconds": time.perf_counter() - began,
            "failures": batch["progress"]["failure"],
        }
        for name, path in _requests(batch_id).items():
            took = _time(client, path, requests)
            figures[f"{name}_p50_ms"] = percentile(took, 50)
            figures[f"{name}_p95_ms"] = percentile(took, 95)
    return figures


def report(figures: Figures) -> None:
    """Print the figures."""
    rows = [
        (name, value, "")
        for name, value in figures.items()
        if name.endswith("_ms") or name in ("batch_seconds", "failures")
    ]
    print_figures(f"console_pages: a batch page of {figures['n']:,.0f} sub-queries", rows)


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=N, help="sub-queries (default %(default)s)")
    args.add_argument(
        "--requests", type=int, default=REQUESTS, help="per request (default %(default)s)"
    )
    ns = args.parse_args(argv)
    return run(NAME, ns.out, lambda: measure(ns.n, ns.requests), report)


if __name__ == "__main__":
    main()
