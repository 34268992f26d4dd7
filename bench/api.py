"""Status calls while a big batch runs: requests per second and latency, against ``/healthz``.

A ``querybatch serve`` process (embedded default) runs a batch of 20,000 demo sub-queries of
50 ms at concurrency 50 (about 20 s of work). While it runs, a load generator in another
process keeps 32 connections busy, one endpoint after the other, for a few seconds each:

- ``/healthz`` of the same server: the baseline (no key, one trivial store read);
- ``GET /query/batch/{id}``: the running batch;
- ``GET /query/status?schedule_id=...``: sub-queries of the running batch, cycling through
  200 spread evenly over it (some finished, some running or waiting, as a poller sees them).

The load generator is ``wrk`` when installed (C: it leaves the server the CPU it would have),
else a Python httpx + asyncio generator (``--loadgen httpx``), which on a 2-core machine takes
about a core from the server. Reported per endpoint: requests per second, p50 and p99 latency,
errors and the ratio of its rate to ``/healthz``'s; and how fast the batch progressed meanwhile.

Run it as ``python -m bench.api [--seconds 5] [--loadgen auto|wrk|httpx]``; figures go to
``bench/results/api.json``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from bench._batch import batch_body, server_env, submit
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
from bench._load import LoadResult, Tool, pick_tool, run_load
from bench._server import BenchServer

NAME = "api"
N, CONCURRENCY, LATENCY_MS = 20_000, 50, 50.0
TARGET_RPS, TARGET_P99_MS = 1500.0, 50.0
STATUS_IDS = 200
ENDPOINTS = ("healthz", "batch", "status")


def _batch(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = client.get(f"/query/batch/{batch_id}").raise_for_status().json()["data"]
    return data


def _wait_running(client: httpx.Client, batch_id: str, done: int) -> dict[str, Any]:
    """Wait until the batch runs and has finished ``done`` sub-queries (a warm server)."""
    while True:
        data = _batch(client, batch_id)
        if data["status_code"] == "RUNNING" and data["progress"]["success"] >= done:
            return data
        time.sleep(0.05)


def _phase(
    server: BenchServer, paths: list[str], seconds: float, tool: Tool, auth: bool
) -> tuple[LoadResult, float, float]:
    """Load the paths; the result, and the CPU cores the server and its main thread used."""
    headers = server.headers() if auth else {}
    cpu, main = server.cpu_seconds(), server.thread_cpu()[server.pid]
    result = run_load(server.url, paths, headers, seconds, tool=tool)
    cores = (server.cpu_seconds() - cpu) / result.seconds
    return result, cores, (server.thread_cpu()[server.pid] - main) / result.seconds


def measure(
    seconds: float,
    tool: Tool,
    endpoints: tuple[str, ...] = ENDPOINTS,
    profile: Profiling | None = None,
    *,
    idle: bool = False,
) -> Figures:
    """Start the server and the batch, load each endpoint in turn; every figure.

    ``idle`` cancels the batch before loading: the same objects are read, but nothing runs
    beside the API, which separates the handlers' own cost from the batch's.
    """
    with BenchServer(server_env(CONCURRENCY, LATENCY_MS)) as server, server.client() as client:
        batch_id = submit(client, batch_body(N, CONCURRENCY))
        _wait_running(client, batch_id, CONCURRENCY * 4)
        if idle:
            client.delete(f"/query/batch/{batch_id}").raise_for_status()
        step = N // STATUS_IDS
        status_paths = [
            f"/query/status?schedule_id={batch_id}_query_{k}" for k in range(1, N + 1, step)
        ]
        before = _batch(client, batch_id)
        began = time.perf_counter()
        paths = {
            "healthz": ["/healthz"],
            "batch": [f"/query/batch/{batch_id}"],
            "status": status_paths,
        }
        with server.profiled(profile):
            results = {
                name: _phase(server, paths[name], seconds, tool, auth=name != "healthz")
                for name in endpoints
            }
        elapsed = time.perf_counter() - began
        after = _batch(client, batch_id)
        done = after["progress"]["success"] - before["progress"]["success"]
        running = after["status_code"] == "RUNNING"
        client.delete(f"/query/batch/{batch_id}").raise_for_status()
    figures: Figures = {
        "n": N,
        "concurrency": CONCURRENCY,
        "latency_ms": LATENCY_MS,
        "connections": 32,
        "idle_server": 1.0 if idle else 0.0,
        "phase_seconds": seconds,
        "wrk_used": 1.0 if pick_tool(tool) == "wrk" else 0.0,
        "batch_running_throughout": 1.0 if running else 0.0,
        "batch_subqueries_per_s_under_load": done / elapsed,
        "batch_ideal_subqueries_per_s": CONCURRENCY / (LATENCY_MS / 1000),
    }
    for name, (result, cores, main_cores) in results.items():
        figures[f"{name}_rps"] = result.rps
        figures[f"{name}_server_cpu_cores"] = cores
        figures[f"{name}_main_thread_cores"] = main_cores
        figures[f"{name}_p50_ms"] = result.p50_ms
        figures[f"{name}_p99_ms"] = result.p99_ms
        figures[f"{name}_errors"] = result.errors
        if "healthz" in results:
            figures[f"{name}_ratio_to_healthz"] = ratio(result.rps, results["healthz"][0].rps)
    return figures


def report(figures: Figures) -> None:
    """Print the figures with the targets the lead aims at."""
    rows: list[tuple[str, float, str]] = []
    for name in ENDPOINTS:
        if f"{name}_rps" not in figures:
            continue
        rps, p99 = figures[f"{name}_rps"], figures[f"{name}_p99_ms"]
        ratio_hz = figures.get(f"{name}_ratio_to_healthz", math.nan)
        note = ""
        if name != "healthz":
            ok = rps >= TARGET_RPS and p99 < TARGET_P99_MS and ratio_hz >= 0.5
            note = f"target >= {TARGET_RPS:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms, >= 0.5 of healthz"
            note += ": " + target(ok)
        rows += [
            (f"{name}_rps", rps, note),
            (f"{name}_p50_ms", figures[f"{name}_p50_ms"], ""),
            (f"{name}_p99_ms", p99, ""),
            (f"{name}_ratio_to_healthz", ratio_hz, ""),
            (f"{name}_errors", figures[f"{name}_errors"], ""),
            (f"{name}_server_cpu_cores", figures[f"{name}_server_cpu_cores"], "server CPU"),
            (f"{name}_main_thread_cores", figures[f"{name}_main_thread_cores"], "event loop"),
        ]
    rows += [
        (
            "batch_subqueries_per_s_under_load",
            figures["batch_subqueries_per_s_under_load"],
            f"ideal C/L = {figures['batch_ideal_subqueries_per_s']:,.0f}/s",
        ),
        ("batch_running_throughout", figures["batch_running_throughout"], "1 = yes"),
        ("wrk_used", figures["wrk_used"], "0 = httpx load generator"),
    ]
    print_figures(
        f"api: {N:,} x {LATENCY_MS:.0f} ms sub-queries at C={CONCURRENCY}, 32 connections", rows
    )


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument(
        "--seconds", type=float, default=5.0, help="load per endpoint (default %(default)s)"
    )
    args.add_argument("--loadgen", choices=["auto", "wrk", "httpx"], default="auto")
    args.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help="which to load, in order (default %(default)s; to profile one alone)",
    )
    args.add_argument(
        "--idle",
        action="store_true",
        help="cancel the batch before loading: measure the handlers without the batch's load",
    )
    ns = args.parse_args(argv)
    endpoints = tuple(e for e in ns.endpoints.split(",") if e in ENDPOINTS)
    return run(
        NAME,
        ns.out,
        lambda: measure(ns.seconds, ns.loadgen, endpoints, profiling(ns), idle=ns.idle),
        report,
    )


if __name__ == "__main__":
    main()
