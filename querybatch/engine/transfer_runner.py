"""The transfer runner: on the leading node, due transfers become runs, runs become query
batches, and each stopped batch is loaded into its transfer's destination.

```
transfer due (next_run_at <= now) --create_due--> run CREATED   (next_run_at moved on)
CREATED  --a query batch: one query per account, the run's data date--> RUNNING
           (runs of a backfill on consecutive dates share one, numbered day by day: each
           run's queries together, its own data date's)
RUNNING  --its batch stopped--> LOADING --its destination's next group load--> COMPLETED | FAILED
```

The scheduler starts a pass (``start``) on each of its ticks on the leading node, at most
one every ``every`` seconds, or at the next tick when a batch stopped or a load ended
(``poke``); a pass is three short steps, each bounded to ``PASS_LIMIT``
transfers or runs. Loads run as tasks of their own (``engine/transfer_loads.py``: a lane
per destination, runs of one transfer loaded together), ``LOADS`` at a time, so a
destination that is slow or down holds up only its own runs: its load fails with its
message and the next scheduled run tries again. A failed or stopped sub-query fails its
run without a load, so the destination keeps the rows it had rather than losing an
account's; in a batch several runs of a backfill share (one batch of a few data dates
costs the server what one of its runs did), it fails only the run whose data date it
read, and each run loads and reads back only its own queries (``query_offset``,
``query_count``).
The batch runs under every limit, retry and cancel rule of query batches; the destinations
do their work in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from querybatch import logs
from querybatch.domain.status import BatchStatus, QueryStatus
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
from querybatch.store.transfer_runs import RunQueries, TransferRunRecord
from querybatch.store.transfers import TransferRecord

log = logging.getLogger(__name__)

PASS_LIMIT = 100
BACKFILL_BATCH = 8  # a backfill's batch holds at most this many tenant's limits of sub-queries
BACKFILL_DEPTH = 3  # a backfill's batches under way at once (one running, two waiting)
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
        # next batch's sub-queries waiting behind (so a batch's end never leaves slots idle
        # until the next pass), while the scheduler's turns between lanes keep the recurring
        # runs' batches going.
        queries = BACKFILL_DEPTH * BACKFILL_BATCH * self.batches.settings.account_concurrency
        # Runs waiting for their load leave room to the next ones, up to two groups' worth.
        loading = 2 * GROUP_RUNS
        chosen = await self.store.transfer_runs.startable(PASS_LIMIT, queries, loading)
        # At once: a batch's submit mostly waits for the store's writer, and one after the
        # other they kept a backfill's sub-queries from coming as fast as they ran.
        made = await asyncio.gather(*(self._submit_or_fail(runs) for runs in _sharing(chosen)))
        shares = [share for shares in made for share in shares]
        if not shares:
            return
        started = await self.store.transfer_runs.mark_started(
            {run_id: queries for share in shares for run_id, queries in share.runs.items()},
            self.clock(),
        )
        for share in shares:
            # None of its runs started (another pass took them, or a cancel): it is spare. One
            # started is enough to keep it: the others' queries run to no use, nothing worse.
            if started.isdisjoint(share.runs):
                await self.batches.stop(share.batch)

    async def _submit_or_fail(self, runs: list[TransferRunRecord]) -> list[_Share]:
        """The query batches of runs of one transfer (several runs to a batch where they
        share); the runs whose batch could not be made fail."""
        try:
            transfer = await self._transfer(runs[0])
            schema = await self.transfers.schema(transfer.data_source_id)
        except Exception as exc:  # these runs' failure, never the pass's
            for run in runs:
                await self._fail(run, exc)
            return []
        fields = [f.field_id for f in schema.fields][:MAX_FIELDS]
        accounts = _users(transfer)
        # A batch holds consecutive dates' runs, up to BACKFILL_BATCH tenant's limits of
        # sub-queries, and BACKFILL_DEPTH batches of a backfill are under way, in a sequence
        # (the scheduler runs them one after the other): the next one's sub-queries fill the
        # slots the last of one batch leaves while it ends. What a batch costs beyond its
        # sub-queries (planning, storing, its lane, its runs' loads waiting for its end) is
        # paid once for many runs: a year's backfill of 25 accounts makes 12 batches, not
        # 365 (or 92 of one limit each), and runs as fast as one batch of its sub-queries. A
        # run's queries are never split between batches.
        settings = self.batches.settings
        most = min(BACKFILL_BATCH * settings.account_concurrency, settings.max_batch_queries)
        parts = _consecutive(runs, max(1, most // max(1, len(accounts))))
        # One after the other, so that the sequence runs them in date order.
        made = [await self._submit_share(transfer, fields, accounts, part) for part in parts]
        return [share for share in made if share is not None]

    async def _submit_share(
        self,
        transfer: TransferRecord,
        fields: list[str],
        accounts: dict[str, str | None],
        runs: list[TransferRunRecord],
    ) -> _Share | None:
        """One query batch for the runs, each run's queries after the last one's; None when
        it could not be made, which fails the runs."""
        sequence = None if runs[0].backfill_id is None else f"backfill-{runs[0].backfill_id}"
        try:
            batch = await self._submit(
                transfer, fields, accounts, runs[0].data_date, len(runs), sequence
            )
        except Exception as exc:  # these runs' failure, never the pass's
            for run in runs:
                await self._fail(run, exc)
            return None
        count = len(accounts)
        queries = {run.id: RunQueries(batch.id, n * count, count) for n, run in enumerate(runs)}
        return _Share(batch, queries)

    async def _submit(
        self,
        transfer: TransferRecord,
        fields: list[str],
        accounts: dict[str, str | None],
        first: date,
        days: int,
        sequence: str | None,
    ) -> BatchRecord:
        caller = Caller(transfer.account, f"transfer-{transfer.id}")
        body = _batch_body(transfer, fields, accounts, first, first + timedelta(days=days - 1))
        # Every query at once, up to the server's bound for one batch (the default of 5
        # made a run of 25 accounts five rounds of the connector's latency).
        body["query_concurrency"] = max(
            1, min(len(accounts) * days, self.batches.settings.max_query_concurrency)
        )
        # Numbered day by day: each run's queries together, in the order the runs start.
        batch, _ = await self.batches.submit(caller, body, interleaved=True, sequence=sequence)
        return batch

    async def _load_stopped(self) -> None:
        ready: list[tuple[StoppedRun, TransferRecord]] = []
        read: dict[str, BatchRecord | None] = {}  # runs of a backfill share their batches
        known: dict[int, TransferRecord] = {}  # and their transfer
        for run in await self.store.transfer_runs.to_load(PASS_LIMIT):
            if self.loads.holds(run.id) or run.batch_id is None:
                continue
            if run.batch_id not in read:
                read[run.batch_id] = await self.store.jobs.get_batch(
                    run.account, run.batch_id, self.clock()
                )
            batch = read[run.batch_id]
            if batch is None:
                await self._finish(run, None, "Its query batch expired before it was loaded")
            elif batch.status is BatchStatus.STOPPED:
                try:
                    transfer = await self._loadable(run, batch, known)
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

    async def _loadable(
        self, run: TransferRunRecord, batch: BatchRecord, known: dict[int, TransferRecord]
    ) -> TransferRecord | None:
        """The run's transfer (read once for the runs of a pass: ``known``), to load the
        batch's rows into its destination; None when the rows cannot replace the run's
        slice, which fails the run."""
        problem = await self._run_problem(run, batch)
        if problem is not None:
            await self._finish(run, None, problem)
            return None
        if run.transfer_id not in known:
            known[run.transfer_id] = await self._transfer(run)
        return known[run.transfer_id]

    async def _run_problem(self, run: TransferRunRecord, batch: BatchRecord) -> str | None:
        """Why the rows of the run's queries cannot replace its slice (None: they can).
        Only the run's own queries count: another run's failed query in a batch they
        share fails that run alone."""
        counts = batch.counts
        if batch.cancel_time is None and not counts.failure and not counts.stopped:
            return None  # every query of the batch succeeded, so every one of the run's
        count = run.query_count if run.query_count is not None else counts.total
        await self.batches.wait_stored(batch, run.query_offset + count)  # a stop stores the rest
        own = await self.store.jobs.batch_page(batch.id, run.query_offset, count)
        failed = [q for q in own if q.status is not QueryStatus.SUCCESS]
        if not failed:
            return None
        if batch.cancel_time is not None:
            return "Its query batch was cancelled"
        first = next((q.error for q in failed if q.error is not None), None)
        detail = "" if first is None else f": {first.message}"
        return f"{len(failed)} of {len(own)} queries failed{detail}"

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


@dataclass(frozen=True, slots=True)
class _Share:
    """A query batch and the runs (id) whose queries it holds."""

    batch: BatchRecord
    runs: dict[int, RunQueries]


def _sharing(chosen: list[TransferRunRecord]) -> list[list[TransferRunRecord]]:
    """The runs to start, as the runs of one transfer whose batches may be shared: each run
    of a backfill with the others of its backfill, each recurring run alone (a recurring
    run's batch is its own, as its users see it in their batch list)."""
    together: dict[int, list[TransferRunRecord]] = {}
    alone: list[list[TransferRunRecord]] = []
    for run in chosen:
        if run.backfill_id is None:
            alone.append([run])
        else:
            together.setdefault(run.backfill_id, []).append(run)
    return alone + list(together.values())


def _users(transfer: TransferRecord) -> dict[str, str | None]:
    """The transfer's accounts, each once and in order, with the login that reads it."""
    users: dict[str, str | None] = {}
    for entry in transfer.config.get("accounts", []):
        users.setdefault(entry["account_id"], entry.get("data_source_username"))
    return users


def _consecutive(runs: list[TransferRunRecord], most: int) -> list[list[TransferRunRecord]]:
    """The runs (of one transfer) as stretches of consecutive data dates, at most ``most``
    runs each, in date order: a stretch's runs share a batch."""
    parts: list[list[TransferRunRecord]] = []
    for run in sorted(runs, key=lambda r: r.data_date):
        last = parts[-1] if parts else None
        if last and len(last) < most and run.data_date == last[-1].data_date + timedelta(days=1):
            last.append(run)
        else:
            parts.append([run])
    return parts


def _batch_body(
    transfer: TransferRecord,
    fields: list[str],
    users: dict[str, str | None],
    first: date,
    last: date,
) -> dict[str, Any]:
    """The query batch of runs of consecutive data dates: a query per account over their
    dates, split by day (numbered day by day, the runs' queries come one run after the
    other, each run's an account after the other)."""
    settings = {s["field_id"]: s.get("value") for s in transfer.config.get("settings", [])}
    queries = []
    for account, user in users.items():
        query: dict[str, Any] = {
            "ds_id": transfer.data_source_id,
            "ds_accounts": [account],
            "fields": fields,
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
        }
        if user:
            query["ds_user"] = user
        if settings:
            query["settings"] = settings
        queries.append(query)
    return {"queries": queries, "split_dates_policy": "day"}
