"""Sum up a py-spy profile (``--format raw`` collapsed stacks) per thread and per function.

Every benchmark takes ``--profile FILE`` to sample the server with py-spy while it measures;
this prints where those samples went: the share of each thread, the functions that were
running themselves (self) and the functions on the stack (inclusive), as percentages of all
samples. Line numbers are dropped, so a function counts once however many lines it spent in.

Run it as ``python -m bench.profile_summary FILE [--top 25] [--thread MainThread]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    """Sample counts of one collapsed-stacks file."""

    total: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    self_samples: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def load(path: Path, thread: str | None = None) -> Profile:
    """Read collapsed stacks, keeping only ``thread``'s (matched on its name) when given."""
    profile = Profile()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        if frames[0].startswith("thread"):
            frames = frames[1:]
        name = re.sub(r"_\d+$", "", name)  # qb-store-read_3 -> qb-store-read
        if thread is not None and name != thread:
            continue
        profile.total += count
        profile.threads[name] += count
        functions = [_frame(f) for f in frames]
        if functions:
            profile.self_samples[functions[-1]] += count
        for function in set(functions):
            profile.inclusive[function] += count
    return profile


def _print_table(title: str, counts: Counter[str], total: int, top: int) -> None:
    print(f"\n{title}")
    for name, count in counts.most_common(top):
        print(f"  {100 * count / total:6.1f}%  {name}")


def main(argv: list[str] | None = None) -> None:
    """Print the summary of one profile."""
    args = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__)
    args.add_argument("file", type=Path)
    args.add_argument("--top", type=int, default=25)
    args.add_argument("--thread", default=None, help="only this thread (e.g. MainThread)")
    args.add_argument(
        "--under", type=int, default=95, help="inclusive table: hide frames above this percent"
    )
    ns = args.parse_args(argv)
    profile = load(ns.file, ns.thread)
    if not profile.total:
        print("no samples")
        return
    print(f"{profile.total} samples in {ns.file}")
    _print_table("threads", profile.threads, profile.total, ns.top)
    _print_table(
        "self (the function itself was running)", profile.self_samples, profile.total, ns.top
    )
    inclusive = Counter(
        {k: v for k, v in profile.inclusive.items() if v * 100 < ns.under * profile.total}
    )
    _print_table("inclusive (on the stack)", inclusive, profile.total, ns.top)


if __name__ == "__main__":
    main()
