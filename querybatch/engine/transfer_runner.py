"""The transfer runner: on the leading node, due transfers become runs, runs become query
batches, and each stopped batch is loaded into its transfer's destination.

```
transfer due (next_run_at <= now) --create_due--> run CREATED   (next_run_at moved on)
CREATED  --a query batch: one query per account, the run's data date--> RUNNING
RUNNING  --its batch stopped--> LOADING --its destination's next group load--> COMPLETED | FAILED
```

The scheduler starts a pass (``start``) on each of its ticks on the leading node, at most
one every ``every`` seconds, or at the next tick when a batch stopped or a load ended
(``poke``); a pass is three short steps, each bounded to ``PASS_LIMIT``
transfers or runs. Loads run as tasks of their own (``engine/transfer_loads.py``: a lane
per destination, runs of one transfer loaded together), ``LOADS`` at a time, so a
destination that is slow or down holds up only its own runs: its load fails with its
message and the next scheduled run tries again. A batch with a failed or stopped
sub-query fails its run without a load, so the destination keeps the rows it had rather
than losing an account's.
The batch runs under every limit, retry and cancel rule of query batches; the destinations
do their work in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from querybatch import logs
from querybatch.domain.status import BatchStatus
from querybatch.domain.transfer_schedule import due_dates
from querybatch.engine.destinations import Destinations
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.service import Caller
from querybatch.engine.transfer_loads import (
    GROUP_RUNS,
    LOADS,
    StoppedRun,
    TransferLoads,
    end_run,
    failure_message,
)
from querybatch.engine.transfers import Transfers, next_due_at, schedule_of
from querybatch.errors import QueryBatchError
from querybatch.store.records import BatchRecord
from querybatch.store.store import Store
from querybatch.store.transfer_runs import TransferRunRecord
from querybatch.store.transfers import TransferRecord

log = logging.getLogger(__name__)

PASS_LIMIT = 100
BACKFILL_DEPTH = 2  # a backfill's sub-queries under way: this many times the tenant's limit
MAX_FIELDS = 100  # the most fields one query asks for


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
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.batches = batches
        self.transfers = transfers
        self.destinations = destinations
        self.every = every
        # Due times, runs' times and a pass's pace read this clock: tests move it by hand.
        self.clock = clock
        # Has the scheduler tick now (it starts passes on the leading node only): a run's
        # end waited up to a tick for the pass that starts the next run and loads it.
        self.wake = wake
        self.loads = TransferLoads(
            store, transfers, destinations, loads=loads, clock=clock, ended=self.poke
        )
        self._pass: asyncio.Task[None] | None = None
        self._last_pass = float("-inf")
        self._poked = False
        self._recovered = False

    # -- life cycle ---------------------------------------------------------------------------

    def poke(self) -> None:
        """Something a pass acts on happened (a batch stopped, a load ended): the next
        ``start``, which the scheduler is woken for, begins a pass without waiting out
        ``every`` (once the pass under way has ended)."""
        self._poked = True
        self.wake()

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
        tasks = [t for t in (self._pass, *self.loads.tasks()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Return once the pass and every load started so far have ended (for tests)."""
        while pending := [
            t for t in (self._pass, *self.loads.tasks()) if t is not None and not t.done()
        ]:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- a pass -------------------------------------------------------------------------------

    async def run_pass(self) -> None:
        """Make the due runs, load those whose batch stopped, and start the new ones."""
        if not self._recovered:
            # Loads left unfinished by this node's previous process or a former leader.
            await self.store.transfer_runs.requeue_loads()
            self._recovered = True
        await self._create_due()
        # Runs whose batches stopped become LOADING first: the runs started next take the
        # room their sub-queries left (a pass in the other order saw none, and left it idle
        # until the next pass).
        await self._load_stopped()
        await self._start_created()

    async def _logged_pass(self) -> None:
        try:
            await self.run_pass()
        except Exception as exc:
            logs.retrying(log, "transfer runs pass failed", exc)
        if self._poked:  # poked while this pass ran, so the next one is due now
            self.wake()

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
        # Runs waiting for their load leave room to the next ones, up to two groups' worth.
        loading = 2 * GROUP_RUNS
        chosen = await self.store.transfer_runs.startable(PASS_LIMIT, queries, loading)
        # At once: a batch's submit mostly waits for the store's writer, and one after the
        # other they kept a backfill's sub-queries from coming as fast as they ran.
        made = await asyncio.gather(*(self._submit_or_fail(run) for run in chosen))
        batches = {run.id: batch for run, batch in zip(chosen, made, strict=True) if batch}
        if not batches:
            return
        started = await self.store.transfer_runs.mark_started(
            {run_id: batch.id for run_id, batch in batches.items()}, self.clock()
        )
        for run_id, batch in batches.items():
            if run_id not in started:  # the run was taken meanwhile: this batch is spare
                await self.batches.stop(batch)

    async def _submit_or_fail(self, run: TransferRunRecord) -> BatchRecord | None:
        """The run's query batch; None when it could not be made, which fails the run."""
        try:
            return await self._submit(run)
        except Exception as exc:  # this run's failure, never the pass's
            await self._fail(run, exc)
            return None

    async def _submit(self, run: TransferRunRecord) -> BatchRecord:
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
        return batch

    async def _load_stopped(self) -> None:
        ready: list[tuple[StoppedRun, TransferRecord]] = []
        for run in await self.store.transfer_runs.to_load(PASS_LIMIT):
            if self.loads.holds(run.id) or run.batch_id is None:
                continue
            batch = await self.store.jobs.get_batch(run.account, run.batch_id, self.clock())
            if batch is None:
                await self._finish(run, None, "Its query batch expired before it was loaded")
            elif batch.status is BatchStatus.STOPPED:
                try:
                    transfer = await self._loadable(run, batch)
                except Exception as exc:  # this run's failure, never the pass's
                    await self._fail(run, exc)
                    continue
                if transfer is not None:
                    ready.append((StoppedRun(run, batch), transfer))
        # Queued together, after the last await: the runs of one transfer make one group.
        stepped = await self.store.transfer_runs.mark_loading([s.run.id for s, _ in ready])
        for stopped, transfer in ready:
            if stopped.run.id in stepped:
                self.loads.add(stopped, transfer)

    async def _loadable(self, run: TransferRunRecord, batch: BatchRecord) -> TransferRecord | None:
        """The run's transfer, to load the batch's rows into its destination; None when the
        rows cannot replace the run's slice, which fails the run."""
        problem = await self._batch_problem(batch)
        if problem is not None:
            await self._finish(run, None, problem)
            return None
        return await self._transfer(run)

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
        await self._finish(run, None, failure_message(exc))

    async def _finish(self, run: TransferRunRecord, rows: int | None, error: str | None) -> None:
        await end_run(self.store, run, rows, error, self.clock())


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
