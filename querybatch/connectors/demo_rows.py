"""Generating a demo fetch's rows: raw rows grouped lazily, in windows as small as the requested
dimensions allow (one day, one day of one account, one month, or the whole range), so memory
stays bounded by the groups of one window.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from operator import itemgetter

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.demo_datasets import (
    _MASK,
    _ROW_DIMS,
    CHUNK_ROWS,
    Finish,
    _Dataset,
    _Group,
    splitmix64,
)
from querybatch.domain.fields import FieldInfo, Row
from querybatch.domain.filters import Filter
from querybatch.errors import (
    ConnectorError,
)

# How long one step of the worker thread may aggregate without producing a chunk: short
# enough that a cancelled fetch lets go of its thread soon.
_STEP_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """One fetch, resolved: what to generate, how to group it and what to yield."""

    dataset: _Dataset
    seed: int
    accounts: tuple[tuple[int, tuple[str, str]], ...]
    failures: dict[str, str]
    start: int
    end: int
    rows_per_day: int
    by_date: bool
    by_month: bool
    by_account: bool
    has_dims: bool
    ikey: tuple[int, ...]
    slot_values: tuple[tuple[str, str], ...]
    finish: Finish
    project: Callable[[Row], Row]
    pre: Callable[[Row], bool] | None
    post: Callable[[Row], bool] | None
    limit: int | None
    latency_ms: float
    transient_failures: int


def projector(indices: list[int]) -> Callable[[Row], Row]:
    """A fast function picking the values at ``indices`` out of a row."""
    if len(indices) == 1:
        (index,) = indices
        return lambda row: (row[index],)
    getter: Callable[[Row], Row] = itemgetter(*indices)
    return getter


def group_slots(
    ds: _Dataset, requested: set[str], rows_per_day: int
) -> tuple[tuple[int, ...], tuple[tuple[str, str], ...]]:
    """Map each row index to a slot: one per distinct value of the requested row dimensions."""
    names = [ds.fields[j].field_id for j in _ROW_DIMS]
    picked = tuple(k for k, name in enumerate(names) if name in requested)
    return _group_slots(ds, picked, rows_per_day)


# Every sub-query of a batch asks for the same fields and rows per day: the slots are worked
# out once, not once per sub-query (rows_per_day is bounded, so an entry is too).
@functools.lru_cache(maxsize=64)
def _group_slots(
    ds: _Dataset, picked: tuple[int, ...], rows_per_day: int
) -> tuple[tuple[int, ...], tuple[tuple[str, str], ...]]:
    seen: dict[tuple[str, ...], int] = {}
    ikey: list[int] = []
    values: list[tuple[str, str]] = []
    for i in range(rows_per_day):
        row = ds.row_values(i)
        key = tuple(row[k] for k in picked)
        slot = seen.get(key)
        if slot is None:
            slot = seen[key] = len(values)
            values.append(row)
        ikey.append(slot)
    return tuple(ikey), tuple(values)


def compile_filters(
    ds: _Dataset, request: FetchRequest
) -> tuple[Callable[[Row], bool] | None, Callable[[Row], bool] | None]:
    """Compile the filter into a raw-row part (dimensions) and an output-row part."""
    if request.filter is None:
        return None, None
    from querybatch.domain.filters import FilterSyntaxError, compile_filter

    known = ds.by_id
    pre, post = _split_filter(request.filter, set(request.fields), known)
    types = {name: info.data_type for name, info in known.items()}
    try:
        pre_fn = None if pre is None else compile_filter(pre, ds.dims, types)
        post_fn = None if post is None else compile_filter(post, request.fields, types)
    except FilterSyntaxError as exc:
        raise ConnectorError(f"invalid filter: {exc}") from exc
    return pre_fn, post_fn


def _split_filter(
    flt: Filter, requested: set[str], known: Mapping[str, FieldInfo]
) -> tuple[Filter | None, Filter | None]:
    """Split a filter into conditions for raw rows and conditions for aggregated rows.

    Conditions on dimensions hold the same on raw and aggregated rows; conditions on metrics
    only on aggregated rows, so those metrics must be requested.
    """
    for name in sorted(flt.fields):
        if name not in known:
            raise ConnectorError(f"unknown filter field {name!r}")
    if flt.fields <= requested:
        return None, flt
    for name in sorted(flt.fields - requested):
        if known[name].is_metric:
            raise ConnectorError(f"filter field {name} must be requested")
    if not any(known[name].is_metric for name in flt.fields):
        return flt, None
    if len(flt.groups) != 1:
        raise ConnectorError(
            "a filter that ORs metric conditions with conditions on dimensions that are not "
            "requested is not supported; request those dimensions"
        )
    (group,) = flt.groups
    dims = tuple(c for c in group if not known[c.field].is_metric)
    metrics = tuple(c for c in group if known[c.field].is_metric)
    return Filter((dims,)), Filter((metrics,))


_START = object()


async def stream_rows(plan: DemoPlan, *, threaded: bool = True) -> AsyncIterator[list[Row]]:
    """The rows of ``plan`` in chunks of ``CHUNK_ROWS``, generated in a worker thread.

    Generating and aggregating is pure CPU work that grows with ``rows_per_day x days x
    accounts``, so none of it runs on the event loop: each step runs in this fetch's own
    thread (one thread, so the generator is never resumed by two at once, and closing it
    waits behind the step in progress). Steps are short, so a cancelled fetch stops soon.
    Only a plan known to be tiny may run on the loop (``threaded=False``).
    """
    if not threaded:
        with closing(_chunks(plan)) as inline:
            for rows in inline:
                if rows:
                    yield rows
        return
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="qb-demo")
    chunks = _chunks(plan)
    try:
        while (chunk := await loop.run_in_executor(pool, _step, chunks)) is not None:
            if chunk:
                yield chunk
    finally:
        await asyncio.shield(loop.run_in_executor(pool, chunks.close))
        pool.shutdown(wait=False)


def _step(chunks: Iterator[list[Row]]) -> list[Row] | None:
    """Advance to the next non-empty chunk, or return ``[]`` after ``_STEP_SECONDS``.

    ``None`` means the rows are all out.
    """
    deadline = time.monotonic() + _STEP_SECONDS
    for chunk in chunks:
        if chunk or time.monotonic() >= deadline:
            return chunk
    return None


def _chunks(plan: DemoPlan) -> Generator[list[Row], None, None]:
    """Re-chunk the generated batches into chunks of ``CHUNK_ROWS`` and apply the limit.

    Empty lists are ticks (one per day at least), so a caller can stop between them.
    """
    limit = plan.limit
    if limit == 0:
        return
    emitted = 0
    pending: list[Row] = []
    batches = _generate(plan)
    try:
        for batch in batches:
            pending.extend(batch)
            if limit is not None and emitted + len(pending) >= limit:
                del pending[limit - emitted :]
                break
            if len(pending) >= CHUNK_ROWS:
                chunk, pending = pending[:CHUNK_ROWS], pending[CHUNK_ROWS:]
                emitted += len(chunk)
                yield chunk
            elif not batch:
                yield []
        for start in range(0, len(pending), CHUNK_ROWS):
            yield pending[start : start + CHUNK_ROWS]
    finally:
        batches.close()


def _generate(plan: DemoPlan) -> Generator[list[Row], None, None]:
    """Aggregate window by window; yield output batches (and an empty one per day as a tick)."""
    ds = plan.dataset
    base_seed = splitmix64(splitmix64(plan.seed & _MASK) ^ ds.salt)
    accounts = [(n, splitmix64(base_seed ^ n), names) for n, names in plan.accounts]
    all_rows = range(plan.rows_per_day)
    row_values = [ds.row_values(i) for i in all_rows] if plan.pre is not None else []
    groups: dict[tuple[object, object], _Group] = {}
    window: object = _START
    for ordinal in range(plan.start, plan.end + 1):
        iso = date.fromordinal(ordinal).isoformat()
        dvals = (iso, iso[:7])
        dkey = ordinal if plan.by_date else dvals[1] if plan.by_month else None
        for number, account_seed, avals in accounts:
            akey = number if plan.by_account else None
            wkey = _window_key(plan, dkey, akey)
            if wkey != window:
                yield from _emit(plan, groups)
                groups = {}
                window = wkey
            group = groups.get((dkey, akey))
            if group is None:
                slots = [[0] * ds.components for _ in plan.slot_values]
                group = groups[dkey, akey] = (dvals, avals, slots)
            rows: Iterable[int] = all_rows
            if plan.pre is not None:
                pre, head = plan.pre, dvals + avals
                rows = [i for i in all_rows if pre(head + row_values[i])]
            ds.accumulate(splitmix64(account_seed ^ ordinal), rows, plan.ikey, group[2])
        yield []
    yield from _emit(plan, groups)


def _window_key(plan: DemoPlan, dkey: object, akey: object) -> object:
    """Groups of different windows never meet again, so a window can be emitted when it ends."""
    if plan.by_date:
        return (dkey, akey)
    return dkey


def _emit(plan: DemoPlan, groups: dict[tuple[object, object], _Group]) -> Iterator[list[Row]]:
    finish, project, post = plan.finish, plan.project, plan.post
    skip_empty = plan.has_dims
    out: list[Row] = []
    for dvals, avals, slots in groups.values():
        head = dvals + avals
        for acc, values in zip(slots, plan.slot_values, strict=True):
            if skip_empty and acc[0] == 0:
                continue
            row = project(head + values + finish(acc))
            if post is not None and not post(row):
                continue
            out.append(row)
            if len(out) >= CHUNK_ROWS:
                yield out
                out = []
    if out:
        yield out
