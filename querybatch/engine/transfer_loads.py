"""Transfer loads: runs whose batches stopped, loaded into their destination a group at a time.

```
run LOADING --queued on its destination's lane--> a group: up to GROUP_RUNS runs of one
transfer --one load of all their slices (one transaction)--> each run COMPLETED, its rows
                                     \\--failed--> one by one, or every run FAILED (below)
```

Each destination has a lane: one task that takes the runs queued on it a group at a time,
so loads into one destination take turns (DuckDB has one writer; two creates of one table
conflict) and the runs that stop while a load is under way make the next group. A group
costs one connection, one check of the table and one commit whatever its size: a year's
backfill was 365 loads in a row, each mostly the opening and closing of the file.

A group's load is atomic where the destination allows (PostgreSQL, DuckDB). When it fails,
a destination that cannot be reached (or a load that ran out of time) fails every run of
the group with its message, as it would fail each of them; any other failure (rows the
table refuses, a run's rows unreadable) is loaded again one run at a time, so that only the
run at fault fails and the others complete. A node stopped during a load leaves its runs
LOADING: the next process loads them again (a load replaces its slices: each row once).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from querybatch import logs
from querybatch.destinations.base import Column, RowChunk, Slice, SliceRows, column_type_of
from querybatch.domain.batch import batch_query_schedule_id
from querybatch.domain.fields import Row
from querybatch.engine.batch_rows import BLOCK_ROWS, batch_stored_rows, decoded_rows
from querybatch.engine.destinations import Destinations
from querybatch.engine.result_rows import Columns
from querybatch.engine.transfers import Transfers
from querybatch.errors import DestinationUnreachable, QueryBatchError
from querybatch.store.records import BatchRecord
from querybatch.store.store import Store
from querybatch.store.transfer_runs import RunStatus, TransferRunRecord
from querybatch.store.transfers import TransferRecord

log = logging.getLogger(__name__)

LOADS = 4
GROUP_RUNS = 64  # runs loaded together: a group's load holds its destination this long
LOAD_TIMEOUT = 3600.0
_COLUMN_CHARS = re.compile(r"[^A-Za-z0-9_]+")

LaneKey = tuple[str, int]  # (tenant, destination id)


@dataclass(frozen=True, slots=True)
class StoppedRun:
    """A LOADING run and its stopped batch, whose rows are to replace the run's slice."""

    run: TransferRunRecord
    batch: BatchRecord


class TransferLoads:
    """The loads of transfer runs on this node: a lane per destination, ``loads`` at once."""

    def __init__(
        self,
        store: Store,
        transfers: Transfers,
        destinations: Destinations,
        *,
        loads: int = LOADS,
        clock: Callable[[], float] = time.time,
        ended: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.transfers = transfers
        self.destinations = destinations
        self.clock = clock
        self._ended = ended  # told after each group: its runs no longer hold a backfill back
        self._load_slots = asyncio.Semaphore(loads)
        self._queued: dict[LaneKey, list[StoppedRun]] = {}
        self._lanes: dict[LaneKey, asyncio.Task[None]] = {}
        self._holding: set[int] = set()
        # A lock lives while a load holds or awaits it: as many as loads under way.
        self._locks: weakref.WeakValueDictionary[LaneKey, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def holds(self, run_id: int) -> bool:
        """Whether the run is queued or loading here."""
        return run_id in self._holding

    def add(self, stopped: StoppedRun, transfer: TransferRecord) -> None:
        """Queue a LOADING run on its destination's lane (started when it has none)."""
        key = (transfer.account, transfer.destination_id)
        self._queued.setdefault(key, []).append(stopped)
        self._holding.add(stopped.run.id)
        if key not in self._lanes:
            self._lanes[key] = asyncio.create_task(self._drain(key), name="qb-transfer-load")

    def tasks(self) -> list[asyncio.Task[None]]:
        """The lanes under way."""
        return list(self._lanes.values())

    # -- a lane -------------------------------------------------------------------------------

    async def _drain(self, key: LaneKey) -> None:
        queued = self._queued[key]
        try:
            while queued:
                group = _take_group(queued)
                try:
                    await self._load_group(group)
                except Exception as exc:  # the store could not end them: never the lane's end
                    log.error(
                        "ending transfer runs failed; they load again on restart", exc_info=exc
                    )
                self._ended()  # slots are free: the next runs of a backfill may start
        finally:
            # No await since the loop's last look: a run queued now starts a new lane.
            for stopped in queued:  # the node stops: left LOADING, taken again later
                self._holding.discard(stopped.run.id)
            del self._queued[key], self._lanes[key]

    async def _load_group(self, group: list[StoppedRun]) -> None:
        """Load the group's slices at once; end each run with its rows or its failure."""
        try:
            transfer = await self._transfer(group[0].run)
            async with self._destination_lock(transfer), self._load_slots:
                load = self._load_rows(transfer, group)
                counts = await asyncio.wait_for(load, LOAD_TIMEOUT)
        except asyncio.CancelledError:
            raise  # the node stops: the runs stay LOADING and are taken again
        except Exception as exc:
            if len(group) > 1 and not isinstance(exc, DestinationUnreachable | TimeoutError):
                for stopped in group:  # only the run at fault fails
                    await self._load_group([stopped])
                return
            for stopped in group:
                await self._end(stopped.run, None, failure_message(exc))
            return
        try:
            ended = {s.run.id: rows for s, rows in zip(group, counts, strict=True)}
            await self.store.transfer_runs.complete(ended, self.clock())
        finally:
            self._holding.difference_update(s.run.id for s in group)
        for stopped in group:
            log_ended(stopped.run, "COMPLETED")

    def _destination_lock(self, transfer: TransferRecord) -> asyncio.Lock:
        # A lane is one destination's already; the lock keeps loads in turn should a
        # transfer be pointed at another destination while its runs wait.
        key = (transfer.account, transfer.destination_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _load_rows(self, transfer: TransferRecord, group: list[StoppedRun]) -> list[int]:
        """Load the group's batches into the destination; the rows loaded for each run."""
        schema = await self.transfers.schema(transfer.data_source_id)
        infos = {f.field_id: f for f in schema.fields}
        columns = [
            Column(column_name(f), column_type_of(infos[f].data_type) if f in infos else "string")
            for f in group[0].batch.columns
        ]
        accounts = _accounts(transfer)
        parts = [
            SliceRows(Slice(transfer.id, stopped.run.data_date, tuple(accounts)), chunks)
            for stopped, chunks in zip(group, self._chunks(group, accounts), strict=True)
        ]
        loaded = await self.destinations.load(
            transfer.account, transfer.destination_id, schema.table_name, columns, parts
        )
        return [result.rows for result in loaded]

    def _chunks(
        self, group: list[StoppedRun], accounts: list[str]
    ) -> list[AsyncIterator[RowChunk]]:
        """Each run's rows by account, in the group's order. Runs that follow each other in
        one batch (a backfill's) are read together, with one stream of the batch's rows: a
        read per run cost more than its few hundred rows."""
        chunks: list[AsyncIterator[RowChunk]] = []
        for together in _adjacent(group):
            read = _SharedRead(self.store, together, accounts)
            chunks.extend(read.rows(index) for index in range(len(together)))
        return chunks

    async def _transfer(self, run: TransferRunRecord) -> TransferRecord:
        record = await self.store.transfers.get(run.account, run.transfer_id)
        if record is None:
            raise QueryBatchError("The transfer was deleted")
        return record

    async def _end(self, run: TransferRunRecord, rows: int | None, error: str | None) -> None:
        try:
            await end_run(self.store, run, rows, error, self.clock())
        finally:
            self._holding.discard(run.id)


class _SharedRead:
    """One stream of the rows of runs that follow each other in one batch, handed to each
    run in turn: the destinations load a group's runs one after the other, so the rows each
    run's iterator leaves (the next run's) are the ones the next iterator starts with.

    The n-th query of a run reads the n-th account; a run's rows never go past its own
    queries (another run's follow in a shared batch).
    """

    def __init__(self, store: Store, runs: list[StoppedRun], accounts: list[str]) -> None:
        batch = runs[0].batch
        self._owner: dict[str, tuple[int, str]] = {}
        for index, stopped in enumerate(runs):
            first = stopped.run.query_offset
            for n, account in enumerate(accounts[: _count(stopped, accounts)], start=1):
                self._owner[batch_query_schedule_id(batch.id, first + n)] = (index, account)
        ids = ["schedule_id", *batch.columns]
        wide = Columns(ids=ids, names=ids, data_types=["string"] * len(ids))
        after = runs[0].run.query_offset
        through = runs[-1].run.query_offset + _count(runs[-1], accounts)
        stored = batch_stored_rows(store, batch.id, wide, after=after, through=through)
        self._blocks = decoded_rows(stored)
        self._block: list[list[Any]] = []
        self._next = 0  # the block's first row not handed out yet

    async def rows(self, index: int) -> AsyncIterator[RowChunk]:
        """The rows of the ``index``-th run, by account, in chunks of at most BLOCK_ROWS."""
        owner = self._owner
        current: str | None = None
        rows: list[Row] = []
        while True:
            if self._next == len(self._block):
                block = await anext(self._blocks, None)
                if block is None:
                    break
                self._block, self._next = block, 0
            row = self._block[self._next]
            run, account = owner[row[0]]
            if run > index:
                break  # the next run's rows start here
            self._next += 1
            if run < index:
                continue  # an earlier run's, whose load stopped short of them
            if current is not None and (account != current or len(rows) >= BLOCK_ROWS):
                yield RowChunk(current, rows)
                rows = []
            current = account
            rows.append(tuple(row[1:]))
        if current is not None and rows:
            yield RowChunk(current, rows)


def _count(stopped: StoppedRun, accounts: list[str]) -> int:
    """How many queries the run has in its batch (one per account)."""
    return min(len(accounts), stopped.run.query_count or len(accounts))


def _adjacent(group: list[StoppedRun]) -> list[list[StoppedRun]]:
    """The group's runs, in order, as stretches whose queries follow each other in one batch."""
    stretches: list[list[StoppedRun]] = []
    for stopped in group:
        last = stretches[-1][-1] if stretches else None
        if (
            last is not None
            and last.batch.id == stopped.batch.id
            and last.run.query_count is not None
            and last.run.query_offset + last.run.query_count == stopped.run.query_offset
        ):
            stretches[-1].append(stopped)
        else:
            stretches.append([stopped])
    return stretches


def _take_group(queued: list[StoppedRun]) -> list[StoppedRun]:
    """Take from ``queued`` up to GROUP_RUNS runs loaded together: the first run's, and the
    others of its transfer whose batches have the same columns, in their order."""
    first = queued[0]
    key = (first.run.transfer_id, first.batch.columns)
    group: list[StoppedRun] = []
    rest: list[StoppedRun] = []
    for stopped in queued:
        same = (stopped.run.transfer_id, stopped.batch.columns) == key
        (group if same and len(group) < GROUP_RUNS else rest).append(stopped)
    queued[:] = rest
    return group


async def end_run(
    store: Store, run: TransferRunRecord, rows: int | None, error: str | None, now: float
) -> None:
    """COMPLETED with ``rows`` (no ``error``), else FAILED with it; and say so in the log."""
    status: RunStatus = "COMPLETED" if error is None else "FAILED"
    await store.transfer_runs.finish(run.id, status, rows, error, now)
    log_ended(run, status)


def log_ended(run: TransferRunRecord, status: RunStatus) -> None:
    """Say in the log that the run ended, and how."""
    logs.event(
        log,
        "transfer_run_ended",
        "transfer run {run_id} of transfer {transfer_id} ({data_date}): {status}",
        level=logging.INFO if status == "COMPLETED" else logging.WARNING,
        run_id=run.id,
        transfer_id=run.transfer_id,
        data_date=run.data_date.isoformat(),
        status=status,
    )


def failure_message(exc: Exception) -> str:
    """What a run that failed of ``exc`` says."""
    if isinstance(exc, QueryBatchError):
        return exc.message + (f": {exc.description}" if exc.description else "")
    return f"{type(exc).__name__}: {str(exc)[:500]}"


def column_name(field_id: str) -> str:
    """The destination column of a field: its id where that is a safe name."""
    name = _COLUMN_CHARS.sub("_", field_id).strip("_")[:63] or "field"
    if not name[0].isalpha():
        name = ("f_" + name)[:63]
    return name


def _accounts(transfer: TransferRecord) -> list[str]:
    """The transfer's accounts, each once, in their order."""
    return list(dict.fromkeys(a["account_id"] for a in transfer.config.get("accounts", [])))
