"""The transfer runner: on the leading node, due transfers become runs, runs become query
batches, and each stopped batch is loaded into its transfer's destination.

```
transfer due (next_run_at <= now) --create_due--> run CREATED   (next_run_at moved on)
CREATED  --a query batch: one query per account, the run's data date--> RUNNING
RUNNING  --its batch stopped--> LOADING --slice load--> COMPLETED | FAILED
```

The scheduler starts a pass (``start``) on each of its ticks on the leading node, at most
one every ``every`` seconds, or at the next tick when a batch stopped or a load ended
(``poke``); a pass is three short steps, each bounded to ``PASS_LIMIT``
transfers or runs. Loads run as tasks of their own, ``LOADS`` at a time, so a destination
that is slow or down holds up only its own runs: its load fails with its message and the
next scheduled run tries again. A batch with a failed or stopped sub-query fails its run
without a load, so the destination keeps the rows it had rather than losing an account's.
The batch runs under every limit, retry and cancel rule of query batches; the destinations
do their work in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

from querybatch import logs
from querybatch.destinations.base import Column, RowChunk, Slice, column_type_of
from querybatch.domain.batch import batch_query_schedule_id
from querybatch.domain.fields import Row
from querybatch.domain.status import BatchStatus
from querybatch.domain.transfer_schedule import due_dates
from querybatch.engine.batch_rows import batch_rows
from querybatch.engine.destinations import Destinations
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.result_rows import Columns
from querybatch.engine.service import Caller
from querybatch.engine.transfers import Transfers, next_due_at, schedule_of
from querybatch.errors import QueryBatchError
from querybatch.store.records import BatchRecord
from querybatch.store.store import Store
from querybatch.store.transfer_runs import RunStatus, TransferRunRecord
from querybatch.store.transfers import TransferRecord

log = logging.getLogger(__name__)

PASS_LIMIT = 100
LOADS = 4
BACKFILL_DEPTH = 2  # a backfill's sub-queries under way: this many times the tenant's limit
LOAD_TIMEOUT = 3600.0
MAX_FIELDS = 100  # the most fields one query asks for
_COLUMN_CHARS = re.compile(r"[^A-Za-z0-9_]+")


class TransferRunner:
    """Runs the passes of the transfer runs, in the background of the leading node."""

    def __init__(
        self,
        store: Store,
        batches: QueryBatches,
        transfers: Transfers,
        destinations: Destinations,
        *,
        every: float = 1.0,
        loads: int = LOADS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.batches = batches
        self.transfers = transfers
        self.destinations = destinations
        self.every = every
        # Due times, runs' times and a pass's pace read this clock: tests move it by hand.
        self.clock = clock
        self._load_slots = asyncio.Semaphore(loads)
        self._pass: asyncio.Task[None] | None = None
        self._loads: dict[int, asyncio.Task[None]] = {}
        # A lock lives while a load holds or awaits it: as many as loads under way.
        self._locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._last_pass = float("-inf")
        self._poked = False
        self._recovered = False

    # -- life cycle ---------------------------------------------------------------------------

    def poke(self) -> None:
        """Something a pass acts on happened (a batch stopped, a load ended): the next
        ``start`` begins a pass without waiting out ``every``."""
        self._poked = True

    def start(self) -> None:
        """Start a pass in the background, unless one runs or the last began too recently
        (and nothing poked the runner since)."""
        now = self.clock()
        if self._pass is not None and not self._pass.done():
            return
        if not self._poked and now - self._last_pass < self.every:
            return
        self._last_pass, self._poked = now, False
        self._pass = asyncio.create_task(self._logged_pass(), name="qb-transfer-runs")

    async def stop(self) -> None:
        """Stop the pass and the loads under way (a load cut short is taken again later)."""
        tasks = [t for t in (self._pass, *self._loads.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Return once the pass and every load started so far have ended (for tests)."""
        while pending := [
            t for t in (self._pass, *self._loads.values()) if t is not None and not t.done()
        ]:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- a pass -------------------------------------------------------------------------------

    async def run_pass(self) -> None:
        """Make the due runs, start the new ones, and load those whose batch stopped."""
        if not self._recovered:
            # Loads left unfinished by this node's previous process or a former leader.
            await self.store.transfer_runs.requeue_loads()
            self._recovered = True
        await self._create_due()
        await self._start_created()
        await self._load_stopped()

    async def _logged_pass(self) -> None:
        try:
            await self.run_pass()
        except Exception as exc:
            logs.retrying(log, "transfer runs pass failed", exc)

    async def _create_due(self) -> None:
        now = self.clock()
        for transfer_id, account, due_at in await self.store.transfer_runs.due_transfers(
            now, PASS_LIMIT
        ):
            try:
                made = await self._create_runs(transfer_id, account, due_at, now)
            except Exception as exc:  # one transfer's trouble never holds up the others
                logs.retrying(log, f"making the runs of transfer {transfer_id} failed", exc)
                continue
            if made:
                logs.event(
                    log,
                    "transfer_runs_created",
                    "transfer {transfer_id} (tenant {tenant}): {runs} runs due",
                    transfer_id=transfer_id,
                    tenant=account,
                    runs=len(made),
                )

    async def _create_runs(
        self, transfer_id: int, account: str, due_at: float, now: float
    ) -> list[TransferRunRecord]:
        record = await self.store.transfers.get(account, transfer_id)
        if record is None:
            return []
        schedules = [schedule_of(s) for s in record.config.get("schedule", [])]
        dates = due_dates(schedules, datetime.fromtimestamp(due_at, UTC))
        return await self.store.transfer_runs.create_due(
            transfer_id, due_at, next_due_at(schedules, max(now, due_at)), dates, now
        )

    async def _start_created(self) -> None:
        # A backfill's runs are held to what keeps the tenant's concurrency full, with its
        # next runs' sub-queries waiting behind (so a run's end never leaves slots idle until
        # the next pass): a backfill runs as fast as one batch of its sub-queries would,
        # while the scheduler's turns between lanes keep the recurring runs' batches going.
        queries = BACKFILL_DEPTH * self.batches.settings.account_concurrency
        for run in await self.store.transfer_runs.startable(PASS_LIMIT, queries):
            try:
                await self._start(run)
            except Exception as exc:  # this run's failure, never the pass's
                await self._fail(run, exc)

    async def _start(self, run: TransferRunRecord) -> None:
        transfer = await self._transfer(run)
        schema = await self.transfers.schema(transfer.data_source_id)
        fields = [f.field_id for f in schema.fields][:MAX_FIELDS]
        caller = Caller(run.account, f"transfer-{transfer.id}")
        body = _batch_body(transfer, fields, run.data_date)
        # Every account's query at once (the default of 5 made a run of 25 accounts five
        # rounds of the connector's latency), within the server's bound for one batch.
        body["query_concurrency"] = max(
            1, min(len(body["queries"]), self.batches.settings.max_query_concurrency)
        )
        batch, _ = await self.batches.submit(caller, body)
        if not await self.store.transfer_runs.mark_started(run.id, batch.id, self.clock()):
            await self.batches.stop(batch)  # the run was taken meanwhile: this batch is spare

    async def _load_stopped(self) -> None:
        for run in await self.store.transfer_runs.to_load(PASS_LIMIT):
            if run.id in self._loads or run.batch_id is None:
                continue
            batch = await self.store.jobs.get_batch(run.account, run.batch_id, self.clock())
            if batch is None:
                await self._finish(run, None, "Its query batch expired before it was loaded")
            elif batch.status is BatchStatus.STOPPED:
                if await self.store.transfer_runs.mark_loading(run.id):
                    task = asyncio.create_task(self._load(run, batch), name="qb-transfer-load")
                    self._loads[run.id] = task

    # -- a load -------------------------------------------------------------------------------

    async def _load(self, run: TransferRunRecord, batch: BatchRecord) -> None:
        try:
            # Loads into one destination take turns (DuckDB has one writer; two creates of
            # one table conflict), and wait for their turn without holding a load slot.
            transfer = await self._transfer(run)
            async with self._destination_lock(transfer), self._load_slots:
                load = self._load_rows(run, transfer, batch)
                rows = await asyncio.wait_for(load, LOAD_TIMEOUT)
            await self._finish(run, rows, None)
        except asyncio.CancelledError:
            raise  # the node stops: the run stays LOADING and is taken again
        except Exception as exc:
            await self._fail(run, exc)
        finally:
            self._loads.pop(run.id, None)
            self.poke()  # a slot is free: the next run of a backfill may start

    def _destination_lock(self, transfer: TransferRecord) -> asyncio.Lock:
        key = (transfer.account, transfer.destination_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _load_rows(
        self, run: TransferRunRecord, transfer: TransferRecord, batch: BatchRecord
    ) -> int:
        """Load the run's batch into the destination; the rows loaded."""
        problem = await self._batch_problem(batch)
        if problem is not None:
            raise QueryBatchError(problem)
        schema = await self.transfers.schema(transfer.data_source_id)
        infos = {f.field_id: f for f in schema.fields}
        columns = [
            Column(column_name(f), column_type_of(infos[f].data_type) if f in infos else "string")
            for f in batch.columns
        ]
        accounts = _accounts(transfer)
        loaded = await self.destinations.load(
            run.account,
            transfer.destination_id,
            schema.table_name,
            Slice(transfer.id, run.data_date, tuple(accounts)),
            columns,
            self._chunks(batch, accounts),
        )
        return loaded.rows

    async def _chunks(self, batch: BatchRecord, accounts: list[str]) -> AsyncIterator[RowChunk]:
        """The batch's rows by account: its n-th query reads the n-th account."""
        account_of = {
            batch_query_schedule_id(batch.id, n): account
            for n, account in enumerate(accounts, start=1)
        }
        ids = ["schedule_id", *batch.columns]
        wide = Columns(ids=ids, names=ids, data_types=["string"] * len(ids))
        async for block in batch_rows(self.store, batch.id, wide):
            current: str | None = None
            rows: list[Row] = []
            for row in block:
                account = account_of[row[0]]
                if account != current and rows:
                    assert current is not None
                    yield RowChunk(current, rows)
                    rows = []
                current = account
                rows.append(tuple(row[1:]))
            if rows and current is not None:
                yield RowChunk(current, rows)

    async def _batch_problem(self, batch: BatchRecord) -> str | None:
        """Why the batch's rows cannot replace the slice (None: they can)."""
        counts = batch.counts
        if batch.cancel_time is not None and counts.success < counts.total:
            return "Its query batch was cancelled"
        if not counts.failure and not counts.stopped:
            return None
        page = await self.store.jobs.batch_page(batch.id, 0, PASS_LIMIT)
        first = next((q.error for q in page if q.error is not None), None)
        detail = "" if first is None else f": {first.message}"
        failed = counts.failure + counts.stopped
        return f"{failed} of {counts.total} queries failed{detail}"

    # -- helpers ------------------------------------------------------------------------------

    async def _transfer(self, run: TransferRunRecord) -> TransferRecord:
        record = await self.store.transfers.get(run.account, run.transfer_id)
        if record is None:
            raise QueryBatchError("The transfer was deleted")
        return record

    async def _fail(self, run: TransferRunRecord, exc: Exception) -> None:
        if isinstance(exc, QueryBatchError):
            message = exc.message + (f": {exc.description}" if exc.description else "")
        else:
            message = f"{type(exc).__name__}: {str(exc)[:500]}"
        await self._finish(run, None, message)

    async def _finish(self, run: TransferRunRecord, rows: int | None, error: str | None) -> None:
        status: RunStatus = "COMPLETED" if error is None else "FAILED"
        await self.store.transfer_runs.finish(run.id, status, rows, error, self.clock())
        logs.event(
            log,
            "transfer_run_ended",
            "transfer run {run_id} of transfer {transfer_id} ({data_date}): {status}",
            level=logging.INFO if error is None else logging.WARNING,
            run_id=run.id,
            transfer_id=run.transfer_id,
            data_date=run.data_date.isoformat(),
            status=status,
        )


def column_name(field_id: str) -> str:
    """The destination column of a field: its id where that is a safe name."""
    name = _COLUMN_CHARS.sub("_", field_id).strip("_")[:63] or "field"
    if not name[0].isalpha():
        name = ("f_" + name)[:63]
    return name


def _accounts(transfer: TransferRecord) -> list[str]:
    """The transfer's accounts, each once, in their order."""
    return list(dict.fromkeys(a["account_id"] for a in transfer.config.get("accounts", [])))


def _batch_body(transfer: TransferRecord, fields: list[str], data_date: date) -> dict[str, Any]:
    """The query batch of one run: one query per account, for the one data date."""
    users: dict[str, str | None] = {}
    for entry in transfer.config.get("accounts", []):
        users.setdefault(entry["account_id"], entry.get("data_source_username"))
    settings = {s["field_id"]: s.get("value") for s in transfer.config.get("settings", [])}
    day = data_date.isoformat()
    queries = []
    for account, user in users.items():
        query: dict[str, Any] = {
            "ds_id": transfer.data_source_id,
            "ds_accounts": [account],
            "fields": fields,
            "start_date": day,
            "end_date": day,
        }
        if user:
            query["ds_user"] = user
        if settings:
            query["settings"] = settings
        queries.append(query)
    return {"queries": queries}
