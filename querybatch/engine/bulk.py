"""Driving bulk batches through their lifecycle, from what the store says.

Each unfinished bulk batch is driven by one asyncio task on the API node that holds its
lease. A task reads the batch, performs the step its status calls for, and writes the next
status with a conditional update; when that update loses a race (a cancel or a delete came
in), it reads the batch again and carries on from there. Because every step starts from the
stored status and redoes its work from scratch (dropping what a previous attempt wrote), a
restart or a dead node resumes every batch where it stood.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from querybatch import logs
from querybatch.domain.bulk import BulkStatus
from querybatch.domain.query import SpecError
from querybatch.domain.status import BatchStatus
from querybatch.engine.bulk_check import BadLine, Checked, FileChecker
from querybatch.engine.bulk_io import copy_file, drop_files, new_file
from querybatch.engine.bulk_results import write_results
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.service import Caller, Engine
from querybatch.errors import Conflict
from querybatch.store.bulk import BulkRecord
from querybatch.store.records import BatchRecord

log = logging.getLogger(__name__)
_FAILED = frozenset({BulkStatus.HASH_MISMATCH, BulkStatus.VALIDATION_FAILED})

UPLOAD_GRACE = 86_400.0  # an empty upload outlives its link this long: a PUT may be under way

Step = Callable[[BulkRecord], Awaitable[object]]


class BulkRunner:
    """Runs the pipelines of the bulk batches this node holds a lease on."""

    def __init__(self, engine: Engine, query_batches: QueryBatches) -> None:
        self.engine = engine
        self.query_batches = query_batches
        self.store = engine.store
        self.settings = engine.settings
        self.node = secrets.token_hex(8)
        self.lease = self.settings.lease_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loop: asyncio.Task[None] | None = None
        self._steps: dict[BulkStatus, Step] = {
            BulkStatus.NEW: lambda r: self._move(r, BulkStatus.COPYING),
            BulkStatus.COPYING: self._copy,
            BulkStatus.COPIED: lambda r: self._move(r, BulkStatus.VALIDATING),
            BulkStatus.VALIDATING: self._validate,
            BulkStatus.PROCESSING: self._process,
            BulkStatus.PROCESSED: lambda r: self._move(r, BulkStatus.WRITING_RESULTS),
            BulkStatus.WRITING_RESULTS: self._write_results,
            BulkStatus.CANCEL: lambda r: self._move(r, BulkStatus.CANCELLING),
            BulkStatus.CANCELLING: self._cancel,
            BulkStatus.DELETING: self._purge,
        }

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every unfinished batch nobody else drives, then keep watching for more.

        A node alone on its store (no scale-out) resumes them all.
        """
        await self._claim(everything=not self.engine.executor.scale_out)
        self._loop = asyncio.create_task(self._housekeeping(), name="qb-bulk")

    async def stop(self) -> None:
        """Stop every pipeline task; their batches resume at the next start or on another node."""
        tasks = [t for t in (self._loop, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def created(self, batch_id: str) -> None:
        """A batch was created on this node: drive it here."""
        logs.event(
            log, "bulk_batch_created", "bulk batch {bulk_batch_id} created", bulk_batch_id=batch_id
        )
        if await self.store.bulk.claim_one(batch_id, self.node, time.time() + self.lease):
            self._spawn(batch_id)

    def poke(self, batch_id: str) -> None:
        """A batch's status was changed from outside its pipeline (a cancel): look at once.

        A batch driven by another node is seen there within a second.
        """
        event = self._wake.get(batch_id)
        if event is not None:
            event.set()

    async def delete(self, record: BulkRecord) -> None:
        """Remove a batch that was moved to ``deleting``: stop its work, drop its files."""
        task = self._tasks.pop(record.id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._purge(record)

    # -- driving ----------------------------------------------------------------------------

    def _spawn(self, batch_id: str) -> None:
        if batch_id in self._tasks:
            return
        self._wake[batch_id] = asyncio.Event()
        self._tasks[batch_id] = asyncio.create_task(
            self._drive(batch_id), name=f"qb-bulk-{batch_id}"
        )

    async def _drive(self, batch_id: str) -> None:
        backoff = 0.5
        try:
            while True:
                try:
                    record = await self.store.bulk.get(batch_id)
                    if record is None or record.status.is_final:
                        return
                    await self._steps[record.status](record)
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A store outage or a bug: never lose the batch, try the step again later.
                    log.exception(
                        "bulk batch %s: step failed; retrying in %.1fs", batch_id, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
        finally:
            self._tasks.pop(batch_id, None)
            self._wake.pop(batch_id, None)

    async def _move(self, record: BulkRecord, target: BulkStatus, **values: Any) -> bool:
        moved = await self.store.bulk.move(record.id, record.status, target, time.time(), **values)
        if moved:
            logs.event(
                log,
                "bulk_batch_status",
                "bulk batch {bulk_batch_id}: {previous} -> {status} (tenant {tenant})",
                level=logging.WARNING if target in _FAILED else logging.INFO,
                bulk_batch_id=record.id,
                previous=record.status.value,
                status=target.value,
                tenant=record.account,
            )
        return moved

    # -- the steps --------------------------------------------------------------------------

    async def _copy(self, record: BulkRecord) -> None:
        await drop_files(self.store, record.id, "batch")
        file_id = await new_file(self.store, record.account, "batch", record.id)
        _, sha = await copy_file(self.store, record.upload_id, file_id)
        matches = record.hash is None or record.hash == sha
        target = BulkStatus.COPIED if matches else BulkStatus.HASH_MISMATCH
        await self._move(record, target, file_id=file_id, sha256=sha)

    async def _validate(self, record: BulkRecord) -> None:
        assert record.file_id is not None
        await drop_files(self.store, record.id, "result")
        checker = FileChecker(
            self.store, self.engine.planner, self.engine.today(), self.settings.max_batch_queries
        )
        checked = await checker.check(record.account, record.id, record.file_id)
        if not checked.bad:
            query_batch_id = await self._submit(record, checked, checker)
            if query_batch_id is not None:
                await self.store.bulk.set_query_batch(record.id, query_batch_id)
                await self._move(record, BulkStatus.PROCESSING, lines_total=checked.total)
                return
        await self._move(
            record,
            BulkStatus.VALIDATION_FAILED,
            result_file_id=checked.result_file_id,
            lines_total=checked.total,
            lines_failed=checked.bad,
        )

    async def _submit(
        self, record: BulkRecord, checked: Checked, checker: FileChecker
    ) -> str | None:
        """Create the query batch running the operations, in line order; None if the engine
        refused a line (its data source changed since validation), which is then reported."""
        body = {
            "queries": checked.queries,
            "query_concurrency": self.settings.max_query_concurrency,
            "timeout_minutes": 60,
            "description": f"bulk batch {record.id}",
        }
        caller = Caller(account=record.account, key_id=record.key_id)
        try:
            # The idempotency key makes a resumed step find the batch it created before.
            batch, _ = await self.query_batches.submit(
                caller, body, idempotency_key=_idempotency_key(record)
            )
        except Conflict:
            # Created before a restart under other settings (a different body): still ours.
            earlier = await self._query_batch(record)
            if earlier is None:
                raise
            return earlier.id
        except SpecError as exc:
            await checker.reject(checked, record.account, record.id, BadLine.of_batch_error(exc))
            await checker.finish(checked)
            return None
        return batch.id

    async def _process(self, record: BulkRecord) -> None:
        assert record.query_batch_id is not None
        query_batch_id = record.query_batch_id
        wake = self._wake.get(record.id) or asyncio.Event()

        async def stopped() -> bool:
            status = await self.store.jobs.batch_status(query_batch_id)
            return wake.is_set() or status in (None, BatchStatus.STOPPED)

        while True:
            status = await self.store.jobs.batch_status(query_batch_id)
            if status in (None, BatchStatus.STOPPED):
                await self._move(record, BulkStatus.PROCESSED)
                return
            fresh = await self.store.bulk.get(record.id)
            if fresh is None or fresh.status is not BulkStatus.PROCESSING:
                return  # cancelled or deleted meanwhile: the next step takes over
            wake.clear()
            await self.engine.waiters.wait(query_batch_id, 1.0, stopped)

    async def _write_results(self, record: BulkRecord) -> None:
        await drop_files(self.store, record.id, "result")
        file_id, failed = await write_results(self.store, record)
        await self._move(record, BulkStatus.COMPLETED, result_file_id=file_id, lines_failed=failed)

    async def _cancel(self, record: BulkRecord) -> None:
        """Stop the operations and keep the results of those that finished."""
        await drop_files(self.store, record.id, "result")
        batch = await self._query_batch(record)
        if batch is None:
            await self._move(record, BulkStatus.CANCELLED)
            return
        if batch.status is not BatchStatus.STOPPED:
            await self.query_batches.stop(batch)
        # A cancel may have overtaken validation between creating the query batch and
        # recording it; the results follow from the query batch either way.
        record = replace(
            record, query_batch_id=batch.id, lines_total=record.lines_total or batch.query_amount
        )
        file_id, failed = await write_results(self.store, record)
        await self._move(
            record,
            BulkStatus.CANCELLED,
            query_batch_id=batch.id,
            result_file_id=file_id,
            lines_total=record.lines_total,
            lines_failed=failed,
        )

    async def _purge(self, record: BulkRecord) -> None:
        await self.store.bulk.purge(record.id)
        # After the purge: a query batch whose creation was still being written when the
        # pipeline was stopped is found now, and stopped too.
        await self._stop_query_batch(record)

    async def _query_batch(self, record: BulkRecord) -> BatchRecord | None:
        # Found by its idempotency key rather than query_batch_id, which a step interrupted
        # between creating the query batch and recording it never wrote.
        return await self.store.jobs.find_by_idempotency_key(
            record.account, _idempotency_key(record)
        )

    async def _stop_query_batch(self, record: BulkRecord) -> None:
        batch = await self._query_batch(record)
        if batch is not None and batch.status is not BatchStatus.STOPPED:
            await self.query_batches.stop(batch)

    # -- leases and housekeeping ------------------------------------------------------------

    async def _claim(self, *, everything: bool) -> None:
        now = time.time()
        claimed = await self.store.bulk.claim(
            self.node, now, now + self.lease, everything=everything
        )
        for batch_id in claimed:
            self._spawn(batch_id)

    async def _housekeeping(self) -> None:
        """Renew this node's leases, take over batches whose node died, sweep old uploads."""
        # Only a dead node's batches need claiming here (this node claims what it creates).
        period = self.lease / 3
        next_sweep = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                now = time.time()
                await self.store.bulk.renew(self.node, list(self._tasks), now + self.lease)
                await self._claim(everything=False)
                if now >= next_sweep:
                    await self.store.files.sweep(now, UPLOAD_GRACE)
                    next_sweep = now + self.settings.sweep_seconds
            except Exception as exc:
                logs.retrying(log, "bulk housekeeping failed", exc)


def _idempotency_key(record: BulkRecord) -> str:
    return f"bulk_{record.id}"
