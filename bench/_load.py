"""HTTP load from another process: ``wrk`` when installed, else an httpx + asyncio generator.

Both keep ``connections`` keep-alive connections busy for ``seconds``, cycling through the
given paths, and report requests per second and latency percentiles. ``wrk`` is preferred: it
is written in C and needs a few percent of a core for thousands of requests per second, so on
a small machine the server keeps the CPU it would have in production; the Python generator
costs about as much CPU per request as the server does and runs in a separate process so that
at least it does not share the server's, nor the benchmark's, event loop.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench._common import percentile

Tool = Literal["auto", "wrk", "httpx"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured."""

    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors

    @property
    def rps(self) -> float:
        """Requests answered per second."""
        return self.requests / self.seconds


def pick_tool(tool: Tool) -> str:
    """``wrk`` if asked for or (``auto``) installed, else ``httpx``."""
    if tool == "auto":
        return "wrk" if shutil.which("wrk") else "httpx"
    return tool


def run_load(
    base_url: str,
    paths: Sequence[str],
    headers: dict[str, str],
    seconds: float,
    connections: int = 32,
    tool: Tool = "auto",
) -> LoadResult:
    """Keep ``connections`` requests in flight for ``seconds``, cycling through ``paths``."""
    if pick_tool(tool) == "wrk":
        return _wrk(base_url, paths, headers, seconds, connections)
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_httpx_load, (base_url, list(paths), headers, seconds, connections))


_WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'QBJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk(
    base_url: str,
    paths: Sequence[str],
    headers: dict[str, str],
    seconds: float,
    connections: int,
) -> LoadResult:
    script = _WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        command += ["--timeout", "10s", "-s", lua.name]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = subprocess.run(
            [*command, base_url], capture_output=True, text=True, check=True
        ).stdout
    line = next(x for x in output.splitlines() if x.startswith("QBJSON "))
    figures = json.loads(line.removeprefix("QBJSON "))
    return LoadResult(
        tool="wrk",
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=figures["errors"],
    )


def _httpx_load(
    base_url: str, paths: list[str], headers: dict[str, str], seconds: float, connections: int
) -> LoadResult:
    """The Python load generator (runs in a child process of its own)."""
    try:
        import uvloop

        return uvloop.run(_httpx_async(base_url, paths, headers, seconds, connections))
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(_httpx_async(base_url, paths, headers, seconds, connections))


async def _httpx_async(
    base_url: str, paths: list[str], headers: dict[str, str], seconds: float, connections: int
) -> LoadResult:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=10
    ) as client:

        async def worker(deadline: float) -> None:
            nonlocal errors, counter
            while time.perf_counter() < deadline:
                path = paths[counter % len(paths)]
                counter += 1
                sent = time.perf_counter()
                try:
                    response = await client.get(path)
                    await response.aread()
                    ok = response.status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - sent)
                errors += not ok

        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(worker(deadline) for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return LoadResult(
        tool="httpx",
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
    )
