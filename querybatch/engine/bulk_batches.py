"""Bulk batches as callers use them: create, list, read, cancel, delete, download results.

Each method is what one route (or command) does. A tenant only ever sees its own batches:
another tenant's, like an unknown or malformed id, is NOT_FOUND. Cancel and delete are
conditional moves in the store, retried while they race the batch's pipeline; the pipeline
(:class:`~querybatch.engine.bulk.BulkRunner`) then does the work the new status calls for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial

from querybatch.domain.bulk import CANCEL_STATUSES, CANCELLABLE, BulkBatchRequest, BulkStatus
from querybatch.engine.bulk import BulkRunner
from querybatch.engine.bulk_io import read_range
from querybatch.engine.service import Caller
from querybatch.errors import Conflict, NotFound
from querybatch.store.bulk import BulkRecord
from querybatch.store.records import Counts
from querybatch.store.store import Store

__all__ = ["BulkBatches", "BulkLines", "BulkPage", "BulkRecord", "BulkView", "ResultsFile"]

# Statuses whose line counts are final and stored with the batch itself.
_COUNTED = frozenset({BulkStatus.COMPLETED, BulkStatus.CANCELLED, BulkStatus.VALIDATION_FAILED})


@dataclass(frozen=True, slots=True)
class BulkPage:
    """A page of a tenant's batches (id -> status, in listing order) and where the next
    page starts: (created_ts, id) of this page's last batch, None on the last page."""

    statuses: dict[str, str]
    after: tuple[float, str] | None


@dataclass(frozen=True, slots=True)
class BulkLines:
    """How far a batch's lines got: ``total`` (None until validation counted them), ``done``
    (operations that ended, whatever their outcome) and ``failed`` (lines not SUCCESS)."""

    total: int | None
    done: int
    failed: int


@dataclass(frozen=True, slots=True)
class BulkView:
    """A batch and the counts of its lines."""

    record: BulkRecord
    lines: BulkLines


@dataclass(frozen=True, slots=True)
class ResultsFile:
    """A batch's results file: one JSON line per operation, ``size`` bytes whose SHA-256 is
    ``sha256``, read by byte range (``read(start, end)``: bytes ``start`` to ``end - 1``)."""

    batch_id: str
    size: int
    sha256: str
    read: Callable[[int, int], AsyncIterator[bytes]]


class BulkBatches:
    """The bulk batch use-cases, over the store and this node's bulk pipelines."""

    def __init__(self, store: Store, runner: BulkRunner) -> None:
        self.store = store
        self.runner = runner

    async def create(self, caller: Caller, request: BulkBatchRequest) -> BulkRecord:
        """A new batch over the caller's filled upload ``request.handler``, driven from here.

        NOT_FOUND for an unknown, another tenant's or expired upload; CONFLICT when nothing
        was uploaded to it yet.
        """
        record = await self.store.bulk.create(
            account=caller.account,
            key_id=caller.key_id,
            operation=request.operation,
            hash=request.hash,
            description=request.description,
            upload_id=request.handler,
            now=time.time(),
        )
        await self.runner.created(record.id)
        return record

    async def page(
        self,
        caller: Caller,
        *,
        ge: float | None,
        le: float | None,
        after: tuple[float, str] | None,
        limit: int,
        statuses: frozenset[BulkStatus] | None = None,
    ) -> BulkPage:
        """Up to ``limit`` of the caller's batches after ``after``, with created_ts within
        ``ge``..``le`` and, when ``statuses`` is given, in one of them: oldest first,
        newest first when both bounds are given."""
        rows = await self.store.bulk.page(
            caller.account,
            ge=ge,
            le=le,
            after=after,
            newest_first=ge is not None and le is not None,
            limit=limit + 1,
            statuses=statuses,
        )
        page = rows[:limit]
        following = (page[-1][2], page[-1][0]) if len(rows) > limit else None
        return BulkPage({batch_id: status for batch_id, status, _ in page}, following)

    async def get(self, caller: Caller, batch: str) -> BulkRecord:
        """The caller's batch, or NOT_FOUND (unknown, malformed, or another tenant's)."""
        record = None
        if _is_uuid(batch):
            record = await self.store.bulk.get(batch, caller.account)
        if record is None:
            raise NotFound(f"No batch '{batch[:64]}'")
        return record

    async def view(self, caller: Caller, batch: str) -> BulkView:
        """The caller's batch and its line counts (NOT_FOUND as :meth:`get`).

        Counts come from the batch once it has ended, else from the counters of the query
        batch running its operations: one row read, never a scan of the lines.
        """
        record = await self.get(caller, batch)
        total = record.lines_total
        if record.status is BulkStatus.VALIDATION_FAILED:
            lines = BulkLines(total, 0, record.lines_failed or 0)
        elif record.status in _COUNTED:
            lines = BulkLines(total, total or 0, record.lines_failed or 0)
        elif record.query_batch_id is None:
            lines = BulkLines(total, 0, 0)
        else:
            running = await self.store.jobs.get_batch(
                record.account, record.query_batch_id, time.time()
            )
            counts = running.counts if running is not None else Counts()
            failed = counts.failure + counts.stopped
            lines = BulkLines(total, counts.success + failed, failed)
        return BulkView(record, lines)

    async def cancel(self, caller: Caller, batch: str) -> BulkRecord:
        """Ask the caller's batch to cancel; the batch as it now stands.

        Cancelling a batch already cancelled (or cancelling) is harmless; one that started
        writing its results or has finished otherwise is a CONFLICT.
        """
        record = await self.get(caller, batch)
        while record.status in CANCELLABLE:
            moved = await self.store.bulk.move(
                record.id, record.status, BulkStatus.CANCEL, time.time()
            )
            record = await self.get(caller, batch)
            if moved:
                self.runner.poke(record.id)
        if record.status not in CANCEL_STATUSES:
            raise Conflict(
                f"A batch in status '{record.status.value}' cannot be cancelled",
                "Only a batch that has not started writing its results can be cancelled.",
            )
        return record

    async def delete(self, caller: Caller, batch: str) -> BulkRecord:
        """Delete the caller's batch: its operations stop and it and its files are gone.

        The answer is the batch as it was moved to ``deleting``, just before it went.
        """
        record = await self.get(caller, batch)
        while record.status is not BulkStatus.DELETING:
            now = time.time()
            if await self.store.bulk.move(record.id, record.status, BulkStatus.DELETING, now):
                record = replace(record, status=BulkStatus.DELETING, updated_ts=round(now, 3))
                break
            record = await self.get(caller, batch)
        await self.runner.delete(record)
        return record

    async def download(self, batch: str) -> ResultsFile:
        """The results file of any tenant's batch: the caller holds a signed link to it.

        NOT_FOUND while the batch has none (or is gone).
        """
        record = await self.store.bulk.get(batch)
        file = None
        if record is not None and record.result_file_id is not None:
            file = await self.store.files.get(record.result_file_id)
        if record is None or file is None:
            raise NotFound(f"Batch '{batch[:64]}' has no results file")
        return ResultsFile(
            record.id, file.size, file.sha256 or file.id, partial(read_range, self.store, file.id)
        )


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
