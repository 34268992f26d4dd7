"""What polling costs the work it watches: a batch's makespan with and without pollers.

One batch of N demo sub-queries (default 20,000 of 5 ms at ``query_concurrency`` 50) runs on
a fresh ``querybatch serve`` process (embedded default) once per phase:

- ``unpolled``: nobody polls but the bench itself (``GET /query/batch/{id}`` every 50 ms, as
  in every phase): the baseline;
- ``status``, ``batch``, ``status_page``: 4 clients polling as fast as they can, each the
  same route: ``GET /query/status`` of random sub-queries of the batch, ``GET
  /query/batch/{id}``, or ``GET /query/batch/{id}/status`` pages of 100 at random offsets;
- ``mixed``: 16 clients each polling every 100 ms, cycling through the three routes.

Each client runs in its own process, so that the load generator does not share a GIL with
itself. Reported per phase: makespan and its ratio to the unpolled one, polls per second,
server CPU; the server's own count of the CPU per poll its poll lane answered and of how long
it held polls back (``/metrics``); and for the single-route phases the server CPU the phase
used beyond the unpolled run divided by the polls it answered.

With ``--scaled-out`` each phase runs on a scale-out deployment instead: the API node on
PostgreSQL (a schema of its own) and Redis, and a ``querybatch worker`` with two pool
processes (``QB_BENCH_POSTGRES_URL``, ``QB_BENCH_REDIS_URL``, as for ``bench.scaleout``).

Run it as ``python -m bench.polling [--n 20000] [--phases unpolled,status,...]
[--scaled-out]``; figures go to ``bench/results/polling.json`` (``polling_scaleout.json``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench._batch import batch_body, epoch, server_env, submit, wait_stopped
from bench._common import (
    Figures,
    Profiling,
    chosen,
    parser,
    print_figures,
    profiling,
    ratio,
    run,
)
from bench._server import BenchServer
from bench.scaleout import deployment_env, worker_pool

NAME = "polling"
CONCURRENCY, LATENCY_MS, PAGE = 50, 5.0, 100
WORKER_PROCESSES = 2  # scaled out: one Celery pool process per core
ROUTES = ("status", "batch", "status_page")


@dataclass(frozen=True, slots=True)
class Phase:
    """Who polls while the batch runs: how many clients, which route, how often."""

    name: str
    clients: int
    route: str  # one of ROUTES, or "mixed"
    interval_s: float  # 0: as fast as the server answers


PHASES = {
    phase.name: phase
    for phase in (
        Phase("unpolled", 0, "batch", 0.0),
        Phase("status", 4, "status", 0.0),
        Phase("batch", 4, "batch", 0.0),
        Phase("status_page", 4, "status_page", 0.0),
        Phase("mixed", 16, "mixed", 0.1),
    )
}
# The bounds: polled makespan over the unpolled one, and server CPU per poll in ms.
MAKESPAN_BOUNDS = {"status": 1.5, "batch": 1.5, "status_page": 1.5, "mixed": 1.2}
CPU_MS_BOUNDS = {"status": 0.3, "batch": 0.3, "status_page": 1.0}


def _path(route: str, batch_id: str, n: int, rng: random.Random) -> str:
    if route == "status":
        return f"/query/status?schedule_id={batch_id}_query_{rng.randint(1, n)}"
    if route == "batch":
        return f"/query/batch/{batch_id}"
    offset = rng.randrange(0, max(n - PAGE, 1))
    return f"/query/batch/{batch_id}/status?offset={offset}&limit={PAGE}"


def _poll(
    url: str,
    headers: dict[str, str],
    route: str,
    interval_s: float,
    seed: int,
    jobs: Any,
    counts: Any,
    stop: Event,
) -> None:
    """One client: announce itself, take the batch id, poll until told to stop."""
    rng = random.Random(seed)
    routes = ROUTES if route == "mixed" else (route,)
    ok = failed = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        counts.put(("ready", 0, 0))
        batch_id, n = jobs.get()
        turn = seed
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = client.get(_path(routes[turn % len(routes)], batch_id, n, rng))
                ok, failed = (ok + 1, failed) if response.status_code < 400 else (ok, failed + 1)
            except httpx.HTTPError:
                failed += 1
            turn += 1
            if interval_s:
                time.sleep(max(0.0, interval_s - (time.perf_counter() - started)))
    counts.put(("done", ok, failed))


@contextlib.contextmanager
def deployment(scaled_out: bool) -> Iterator[BenchServer]:
    """A fresh server on the embedded default, or an API node with its workers scaled out
    (PostgreSQL, Redis and ``WORKER_PROCESSES`` Celery pool processes)."""
    env = server_env(CONCURRENCY, LATENCY_MS)
    if not scaled_out:
        with BenchServer(env) as server:
            yield server
        return
    with deployment_env() as deployment_settings:
        env |= deployment_settings
        with BenchServer(env) as server, worker_pool(env, WORKER_PROCESSES):
            yield server


def measure_phase(
    phase: Phase, n: int, scaled_out: bool = False, profile: Profiling | None = None
) -> Figures:
    """Run the batch on a fresh deployment with the phase's pollers; its figures (and, when
    asked, a profile of the API server while the batch runs)."""
    context = multiprocessing.get_context("spawn")
    jobs, counts, stop = context.Queue(), context.Queue(), context.Event()
    with deployment(scaled_out) as server:
        pollers = [
            context.Process(
                target=_poll,
                args=(server.url, server.headers(), phase.route, phase.interval_s, i, jobs, counts),
                kwargs={"stop": stop},
                daemon=True,
            )
            for i in range(phase.clients)
        ]
        for poller in pollers:
            poller.start()
        for _ in pollers:
            counts.get(timeout=60)
        with server.client() as client, server.profiled(profile):
            cpu0 = server.cpu_seconds()
            batch_id = submit(client, batch_body(n, CONCURRENCY))
            for _ in pollers:
                jobs.put((batch_id, n))
            data = wait_stopped(client, batch_id)
            cpu = server.cpu_seconds() - cpu0
            lane = _lane_figures(client)
        stop.set()
        ok = failed = 0
        for _ in pollers:
            _, answered, refused = counts.get(timeout=60)
            ok, failed = ok + answered, failed + refused
        for poller in pollers:
            poller.join(timeout=10)
    makespan = epoch(data["end_time"]) - epoch(data["start_time"])
    return {
        f"{phase.name}_makespan_s": makespan,
        f"{phase.name}_succeeded": float(data["progress"]["success"]),
        f"{phase.name}_server_cpu_s": cpu,
        f"{phase.name}_polls": float(ok),
        f"{phase.name}_poll_errors": float(failed),
        f"{phase.name}_polls_per_s": ok / makespan if makespan else 0.0,
        # As the server counts them: the CPU of the polls it answered (the HTTP server's part
        # estimated), and how long it held polls back to keep the engine's share.
        f"{phase.name}_lane_cpu_ms_per_poll": ratio(
            lane["querybatch_node_poll_cpu_seconds_total"] * 1000,
            lane["querybatch_node_polls_total"],
        ),
        f"{phase.name}_polls_held": lane["querybatch_node_polls_held_total"],
        f"{phase.name}_poll_held_s": lane["querybatch_node_poll_held_seconds_total"],
    }


def _lane_figures(client: httpx.Client) -> dict[str, float]:
    """The poll lane's counters in the server's ``/metrics``."""
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        sample.name: sample.value
        for family in families
        if family.name.startswith("querybatch_node_poll")
        for sample in family.samples
    }


def measure(
    n: int, phases: list[str], scaled_out: bool = False, profile: Profiling | None = None
) -> Figures:
    """Every phase in turn (the unpolled one first); ratios and CPU per poll against it.
    With ``profile``, each phase's server is sampled into a file of its own, the phase's name
    before the suffix (``prof.txt``: ``prof.status.txt``, ...)."""
    names = ["unpolled", *[name for name in phases if name != "unpolled"]]
    figures: Figures = {
        "n": float(n),
        "concurrency": CONCURRENCY,
        "latency_ms": LATENCY_MS,
        "scaled_out": float(scaled_out),
    }
    for name in names:
        phase_profile = None
        if profile is not None:
            path = profile.path.with_name(f"{profile.path.stem}.{name}{profile.path.suffix}")
            phase_profile = Profiling(path, profile.gil)
        figures.update(measure_phase(PHASES[name], n, scaled_out, phase_profile))
    base_makespan, base_cpu = figures["unpolled_makespan_s"], figures["unpolled_server_cpu_s"]
    for name in names[1:]:
        figures[f"{name}_makespan_ratio"] = ratio(figures[f"{name}_makespan_s"], base_makespan)
        extra_cpu = figures[f"{name}_server_cpu_s"] - base_cpu
        figures[f"{name}_cpu_ms_per_poll"] = ratio(extra_cpu * 1000, figures[f"{name}_polls"])
    return figures


def report(figures: Figures) -> None:
    """Print each phase against the unpolled baseline and the issue's bounds."""
    rows: list[tuple[str, float, str]] = [
        ("unpolled_makespan_s", figures["unpolled_makespan_s"], "baseline"),
        ("unpolled_server_cpu_s", figures["unpolled_server_cpu_s"], "baseline"),
    ]
    for name in ("status", "batch", "status_page", "mixed"):
        if f"{name}_makespan_s" not in figures:
            continue
        phase = PHASES[name]
        who = f"{phase.clients} clients" + (
            f" every {phase.interval_s * 1000:.0f} ms" if phase.interval_s else ", flat out"
        )
        bound = MAKESPAN_BOUNDS[name]
        met = "met" if figures[f"{name}_makespan_ratio"] <= bound else "MISSED"
        rows += [
            (f"{name}_makespan_s", figures[f"{name}_makespan_s"], who),
            (f"{name}_makespan_ratio", figures[f"{name}_makespan_ratio"], f"<= {bound}: {met}"),
            (f"{name}_polls_per_s", figures[f"{name}_polls_per_s"], "answered polls"),
            (f"{name}_server_cpu_s", figures[f"{name}_server_cpu_s"], "whole batch"),
        ]
        lane_cpu = figures[f"{name}_lane_cpu_ms_per_poll"]
        lane_note = "server's count"
        if name in CPU_MS_BOUNDS:
            met = "met" if lane_cpu <= CPU_MS_BOUNDS[name] else "MISSED"
            lane_note += f"; <= {CPU_MS_BOUNDS[name]}: {met}"
        rows += [
            (f"{name}_lane_cpu_ms_per_poll", lane_cpu, lane_note),
            (f"{name}_poll_held_s", figures[f"{name}_poll_held_s"], "polls held back, in all"),
        ]
        if name in CPU_MS_BOUNDS:
            rows.append(
                (
                    f"{name}_cpu_ms_per_poll",
                    figures[f"{name}_cpu_ms_per_poll"],
                    "server CPU beyond unpolled per poll (noisy when polls are few)",
                )
            )
    n = figures["n"]
    where = (
        f", scaled out ({WORKER_PROCESSES} worker processes)" if figures.get("scaled_out") else ""
    )
    print_figures(f"polling: N={n:.0f} C={CONCURRENCY} L={LATENCY_MS:.0f} ms{where}", rows)


def main(argv: list[str] | None = None) -> Figures:
    """Parse the flags, measure, print and write the figures."""
    args = parser(NAME, __doc__)
    args.add_argument("--n", type=int, default=20_000, help="sub-queries (default %(default)s)")
    args.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated phases; unpolled always runs first (default %(default)s)",
    )
    args.add_argument(
        "--scaled-out",
        action="store_true",
        help="PostgreSQL, Redis and Celery workers instead of the embedded default",
    )
    ns = args.parse_args(argv)
    phases = chosen(args, ns.phases, list(PHASES), "phases")
    name = f"{NAME}_scaleout" if ns.scaled_out else NAME
    return run(name, ns.out, lambda: measure(ns.n, phases, ns.scaled_out, profiling(ns)), report)


if __name__ == "__main__":
    main()
