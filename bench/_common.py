"""What every benchmark shares: argument parsing, printing, percentiles and the results file.

Each benchmark writes its figures as one flat JSON object of named numbers to
``bench/results/NAME.json`` (git-ignored) and prints them as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]

RESULTS_DIR = Path(__file__).parent / "results"

T = TypeVar("T")
Figures = dict[str, float]


def parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """An argument parser for ``python -m bench.NAME`` with the options all benchmarks take."""
    first_line = (description or "").strip().splitlines()[0] if description else None
    result = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=first_line)
    result.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / f"{name}.json",
        help=f"where to write the figures (default: bench/results/{name}.json)",
    )
    result.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also sample the server with py-spy during the measured phase and write its "
        "collapsed stacks here (slows the server: take the figures from a run without it)",
    )
    result.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: keep only samples of the thread holding the GIL",
    )
    return result


def chosen(args: argparse.ArgumentParser, value: str, known: Sequence[str], what: str) -> list[str]:
    """The names of a comma-separated option, each one of ``known`` (else a usage error)."""
    names = [name for name in value.split(",") if name]
    unknown = sorted(set(names) - set(known))
    if unknown:
        args.error(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


@dataclass(frozen=True, slots=True)
class Profiling:
    """Where to write a py-spy profile of the server, and whether only GIL holders count."""

    path: Path
    gil: bool = False


def profiling(ns: argparse.Namespace) -> Profiling | None:
    """The profiling the ``--profile`` flags ask for, if any."""
    return Profiling(ns.profile, ns.profile_gil) if ns.profile else None


def machine() -> Figures:
    """The figures describing the machine a run was measured on."""
    return {"cpu_count": float(os.cpu_count() or 0)}


def wait_until_quiet(max_wait: float = 300.0, busy_pct: float = 15.0) -> float:
    """Wait (up to ``max_wait`` s) until other work leaves the CPUs idle; the busy % seen last.

    Benchmarks on a shared machine measure the neighbours too: each run starts once the CPUs
    were less than ``busy_pct`` busy for three seconds running, or warns that they never were.
    """
    deadline = time.monotonic() + max_wait
    quiet = 0
    busy = 100.0
    while time.monotonic() < deadline:
        busy = float(psutil.cpu_percent(interval=1.0))
        quiet = quiet + 1 if busy < busy_pct else 0
        if quiet >= 3:
            return busy
    print(f"warning: the machine stayed busy ({busy:.0f}% CPU); figures will be low")
    return busy


class Neighbours:
    """CPU that processes other than this benchmark and its children used meanwhile.

    System-wide busy CPU time minus this process's and its reaped children's (the server,
    wrk, load-generator processes): on a shared machine, a run with neighbours above a few
    hundredths of a core measured them too.
    """

    def __init__(self) -> None:
        self._began = time.perf_counter()
        self._system = self._system_busy()
        self._own = self._own_cpu()

    def _system_busy(self) -> float:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system
        busy += getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
        return float(busy)

    def _own_cpu(self) -> float:
        times = psutil.Process().cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    def cores(self) -> float:
        """Cores the neighbours used on average since this object was made."""
        other = (self._system_busy() - self._system) - (self._own_cpu() - self._own)
        return max(other, 0.0) / (time.perf_counter() - self._began)


def describe_machine() -> str:
    """One line naming the machine and the Python that ran the benchmark."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def warn_if_shared(neighbour_cores: float, limit: float = 0.05) -> None:
    """Say so when other processes used noticeable CPU during the run."""
    if neighbour_cores > limit:
        print(
            f"warning: other processes used {neighbour_cores:.2f} cores during the run; "
            "rerun on a quiet machine for figures worth comparing"
        )


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is zero."""
    return numerator / denominator if denominator else math.nan


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (as the server does), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def write_results(name: str, figures: Mapping[str, float], out: Path | None = None) -> Path:
    """Write the figures (plus the machine's) as a flat JSON object; the file written."""
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    numbers = {**machine(), **{k: _number(v) for k, v in figures.items()}}
    path.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    return path


def _number(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def run(
    name: str,
    out: Path,
    measure: Callable[[], Figures],
    report: Callable[[Figures], None],
    *,
    wait_for_quiet: bool = True,
) -> Figures:
    """Measure on a quiet machine (unless told not to wait for one: a smoke test), print the
    figures and write them to ``out``."""
    busy = wait_until_quiet() if wait_for_quiet else float(psutil.cpu_percent(interval=0.2))
    neighbours = Neighbours()
    figures = measure()
    figures["machine_busy_pct_before"] = busy
    figures["neighbour_cpu_cores"] = neighbours.cores()
    report(figures)
    warn_if_shared(figures["neighbour_cpu_cores"])
    print(f"\nwrote {write_results(name, figures, out)}")
    return figures


def print_figures(title: str, rows: Sequence[tuple[str, float, str]]) -> None:
    """Print ``(name, value, note)`` rows under a title, values aligned."""
    print(f"\n{title}  [{describe_machine()}]")
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        shown = f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
        print(f"  {name:<{width}}  {shown:>14}  {note}")


def target(met: bool) -> str:
    """How a figure compares with its target, for the printed table."""
    return "target met" if met else "TARGET MISSED"
