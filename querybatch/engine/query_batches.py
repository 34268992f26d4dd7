"""Query batches: create, read, list, page through the sub-queries, cancel, download the rows."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from querybatch import logs
from querybatch.domain.batch import BatchSettings, new_batch_id
from querybatch.domain.callback_policy import CallbackRefused
from querybatch.domain.query import SpecError
from querybatch.domain.status import BatchStatus
from querybatch.domain.sub_query_filter import (
    FAILURE_ACCOUNTS_MAX,
    FAILURE_GROUPS_MAX,
    FailureSummary,
    SubQueryFilter,
)
from querybatch.engine.activity import MAX_MINUTES, Activity, read_activity, window_minutes
from querybatch.engine.batch_rows import StoredBlocks, batch_stored_rows
from querybatch.engine.batches import plan_batch, request_hash
from querybatch.engine.coalesce import Coalescer
from querybatch.engine.executors.lifecycle import log_stopped
from querybatch.engine.result_rows import Columns
from querybatch.engine.service import Caller, Engine
from querybatch.errors import BadRequest, Conflict, NotFound
from querybatch.store.jobs import POINT_PAGE_ROWS
from querybatch.store.records import BatchRecord, Counts, QueryRecord, SubQueryState
from querybatch.store.results import PackForm

log = logging.getLogger(__name__)

# A batch stored behind its answer keeps its queries' specs until all its sub-queries are
# stored: a batch of more queries than this is stored whole before it is answered.
MAX_PLAN_QUERIES = 10_000

# Sub-queries whose filter rows one store write makes: about 0.15 s of the writer at a time on
# SQLite, so that the engine's own writes are not held up for the whole of a large batch.
FILTER_ROWS_SLICE = 20_000

__all__ = [
    "MAX_MINUTES",
    "Activity",
    "BatchDownload",
    "BatchPage",
    "BatchRecord",
    "BatchStatusPage",
    "Counts",
    "QueryBatches",
    "QueryRecord",
    "SubQueryState",
]


@dataclass(frozen=True, slots=True)
class BatchPage:
    """A page of a tenant's batches, newest first, and whether more follow it."""

    batches: list[BatchRecord]
    more: bool


@dataclass(frozen=True, slots=True)
class BatchStatusPage:
    """A batch and a page of its sub-queries, in batch order."""

    batch: BatchRecord
    queries: list[SubQueryState]
    matched: int | None = None  # sub-queries a filter keeps in all (None: no filter)


@dataclass(frozen=True, slots=True)
class BatchDownload:
    """Every collected row of a batch: a ``schedule_id`` column, then every field of the batch."""

    batch: BatchRecord
    columns: Columns
    blocks: StoredBlocks  # its rows as stored; batch_rows.decoded_rows decodes them


class QueryBatches:
    """Every behaviour of a query batch, as the routes and the bulk pipeline ask for it.

    Clients poll batches: identical reads in flight together are made once (a
    :class:`Coalescer`); a cancel made through this node is seen by the next read.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self._reads = Coalescer(engine.settings.poll_freshness, tag_of=_batch_shown)
        engine.listen_stopped(self._reads.forget)  # a batch's end is seen at the next poll
        self._filter_rows: dict[str, asyncio.Task[None]] = {}  # batch id -> being written

    # -- what the routes call -----------------------------------------------------------------

    async def create(
        self, caller: Caller, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> tuple[BatchRecord, bool]:
        """:meth:`submit`, with a batch that cannot run as a BAD_REQUEST naming the parameter."""
        try:
            return await self.submit(caller, body, idempotency_key=idempotency_key)
        except SpecError as exc:
            raise BadRequest(f"Invalid value for '{exc.parameter}'", str(exc)) from exc

    async def get(self, caller: Caller, batch_id: str) -> BatchRecord:
        """The caller's live batch, or NOT_FOUND (unknown, another tenant's, or expired)."""
        batch = None
        if len(batch_id) <= 32:
            account = caller.account
            batch = await self._reads.read(
                ("batch", account, batch_id),
                lambda: self.store.jobs.get_batch(account, batch_id, time.time()),
            )
        if batch is None:
            raise NotFound(f"No query batch '{batch_id[:64]}'")
        return batch

    async def list_batches(
        self,
        caller: Caller,
        *,
        status: BatchStatus | None,
        created_ge: float | None,
        created_le: float | None,
        after: tuple[float, str] | None,
        limit: int,
    ) -> BatchPage:
        """The tenant's batches, newest first: ``limit`` of them after the cursor ``after``."""
        batches = await self.store.jobs.list_batches(
            caller.account,
            status=status,
            created_ge=created_ge,
            created_le=created_le,
            after=after,
            limit=limit + 1,
        )
        return BatchPage(batches[:limit], len(batches) > limit)

    async def status_page(
        self, caller: Caller, batch_id: str, offset: int, limit: int
    ) -> BatchStatusPage:
        """The caller's batch and ``limit`` of its sub-queries after the first ``offset``."""
        batch = await self.get(caller, batch_id)
        await self.wait_stored(batch, offset + limit)
        read = self.store.jobs.batch_page
        small = limit <= POINT_PAGE_ROWS
        queries = await (read.point if small else read)(batch.id, offset, limit)
        return BatchStatusPage(batch, queries)

    async def filtered_status_page(
        self, caller: Caller, batch_id: str, keep: SubQueryFilter, offset: int, limit: int
    ) -> BatchStatusPage:
        """The caller's batch and ``limit`` of the sub-queries ``keep`` keeps, after the first
        ``offset`` of them, with how many it keeps in all."""
        batch = await self.get(caller, batch_id)
        if keep.is_empty:
            return await self.status_page(caller, batch_id, offset, limit)
        if keep.account is not None or keep.day is not None:
            await asyncio.shield(self._prepare_filters(batch))
        found, matched = await self.store.sub_queries.filtered_page(batch.id, keep, offset, limit)
        return BatchStatusPage(batch, found, matched)

    async def failures(self, caller: Caller, batch_id: str) -> tuple[BatchRecord, FailureSummary]:
        """The caller's batch and its failures grouped by reason (bounded, see the domain)."""
        batch = await self.get(caller, batch_id)
        # The batch page asks for the failures when it opens: its account and date filters'
        # rows are written meanwhile, so that its first such filter need not wait for them.
        self._prepare_filters(batch)
        summary = await self.store.sub_queries.failure_summary(
            batch.id, FAILURE_GROUPS_MAX, FAILURE_ACCOUNTS_MAX
        )
        return batch, summary

    def _prepare_filters(self, batch: BatchRecord) -> asyncio.Task[None]:
        """The task writing the batch's filter rows (``sub_query_keys``), started unless one
        runs on this node; it ends at once when they are all written."""
        task = self._filter_rows.get(batch.id)
        if task is None:
            task = asyncio.create_task(self._write_filter_rows(batch), name="qb-filter-rows")
            self._filter_rows[batch.id] = task
            task.add_done_callback(functools.partial(self._filter_rows_written, batch.id))
        return task

    async def _write_filter_rows(self, batch: BatchRecord) -> None:
        await self.wait_stored(batch, batch.query_amount)
        views = self.store.sub_queries
        if await views.has_keys(batch.id, batch.query_amount):
            return
        for first in range(1, batch.query_amount + 1, FILTER_ROWS_SLICE):
            await views.write_keys(
                batch.id, first, min(first + FILTER_ROWS_SLICE - 1, batch.query_amount)
            )

    def _filter_rows_written(self, batch_id: str, task: asyncio.Task[None]) -> None:
        self._filter_rows.pop(batch_id, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("writing a batch's filter rows failed: %r", error)

    async def cancel(self, caller: Caller, batch_id: str) -> BatchRecord:
        """Cancel the caller's batch (a stopped one is left as it is); the batch as it is now."""
        batch = await self.get(caller, batch_id)
        if batch.status is not BatchStatus.STOPPED:
            await self.stop(batch)
            self._reads.invalidate(("batch", caller.account, batch_id))
            batch = await self.get(caller, batch_id)
        return batch

    async def download(self, caller: Caller, batch_id: str, *, lines: bool) -> BatchDownload:
        """Every collected row of the caller's batch (so far, if it still runs); where a
        stopped batch's rows were packed, as the packs' ndjson ``lines`` or JSON rows."""
        batch = await self.get(caller, batch_id)
        columns = await self._columns(batch)
        packed: PackForm | None = None
        if batch.status is BatchStatus.STOPPED:
            packed = "lines" if lines else "rows"
        blocks = batch_stored_rows(
            self.store, batch.id, columns, through=batch.query_amount, packed=packed
        )
        return BatchDownload(batch, columns, blocks)

    async def activity(self, caller: Caller, minutes: int) -> Activity:
        """The tenant's sub-queries finished per minute and failures by reason over the last
        ``minutes`` (1..1440); the consoles of one tenant polling together read it once."""
        account, window = caller.account, window_minutes(minutes)
        return await self._reads.read(
            ("activity", account, window),
            lambda: read_activity(self.store, account, window, time.time()),
        )

    # -- what the engine's other parts call ---------------------------------------------------

    async def wait_stored(self, batch: BatchRecord, upto: int) -> None:
        """Return once the batch's sub-queries up to position ``upto`` are stored (a large
        batch's are stored behind its answer), or once waiting for them took too long."""
        upto = min(upto, batch.query_amount)
        if batch.stored is not None and batch.stored < upto:
            await self.engine.batch_storing.wait_stored(batch.account, batch.id, upto)

    async def submit(
        self,
        caller: Caller,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        interleaved: bool = False,
        sequence: str | None = None,
    ) -> tuple[BatchRecord, bool]:
        """Validate, split and store a batch; returns it and whether it was created now.

        ``interleaved`` numbers the sub-queries piece by piece across the queries rather
        than query by query: the transfer runs that share a batch (one query per account
        over their dates, split by day) find each date's sub-queries together.

        ``sequence`` puts the batch in a sequence: the scheduler gives the sequence's turns
        to its oldest batch that has a sub-query ready, so the next batch of a backfill waits
        behind the one running and fills the slots its last sub-queries leave.

        Raises SpecError, naming the parameter, for a batch that cannot run. With an
        ``idempotency_key`` already used for the same body, the earlier batch is the answer;
        used for another body, it is a Conflict.
        """
        digest = request_hash(body)
        if idempotency_key:
            earlier = await self._idempotent(caller, idempotency_key, digest)
            if earlier is not None:
                return earlier, False
        settings = self._settings(body)
        if settings.callback_url:
            try:
                await self.engine.callback_targets.check_new(settings.callback_url)
            except CallbackRefused as exc:
                raise SpecError("callback_url", str(exc)) from exc
        batch_id = new_batch_id()
        planned = await plan_batch(
            batch_id,
            settings,
            body.get("queries"),  # type: ignore[arg-type]
            self.engine.planner,
            self.engine.today(),
            self.settings.max_batch_queries,
            interleaved=interleaved,
        )
        subqueries = planned.subqueries
        # A batch of many sub-queries from few queries (a plan much smaller than what it
        # makes) is answered once its first slice is stored; the rest are stored behind the
        # answer from its plan (engine.batch_storing).
        first = self.settings.batch_store_slice
        queries = len(subqueries.specs)
        behind = len(subqueries) > first and queries <= min(MAX_PLAN_QUERIES, len(subqueries) // 2)
        plan = await asyncio.to_thread(subqueries.plan) if behind else None
        now = time.time()
        try:
            batch = await self.store.jobs.create_batch(
                batch_id=batch_id,
                kind="batch",
                account=caller.account,
                key_id=caller.key_id,
                settings=settings,
                columns=planned.columns,
                query_concurrency=settings.query_concurrency,
                timeout_seconds=round(
                    settings.timeout_minutes * self.settings.timeout_minute_seconds
                ),
                schedule_time=settings.schedule_time.timestamp() if settings.schedule_time else now,
                subqueries=subqueries,
                now=now,
                idempotency_key=idempotency_key,
                request_hash=digest,
                callback_url=settings.callback_url,
                sequence=sequence,
                plan=plan,
                stored_now=first if behind else None,
            )
        except Conflict:
            if idempotency_key:
                earlier = await self._idempotent(caller, idempotency_key, digest)
                if earlier is not None:
                    return earlier, False
            raise
        if batch.stored is not None:
            self.engine.batch_storing.hand_over(batch.id, subqueries, batch.stored)
        self.engine.scheduler.wake()
        logs.event(
            log,
            "batch_created",
            "batch {batch_id} created: {queries} sub-queries (tenant {tenant})",
            batch_id=batch.id,
            queries=batch.query_amount,
            tenant=batch.account,
        )
        return batch, True

    async def stop(self, batch: BatchRecord) -> None:
        """Stop a batch: nothing new starts, running sub-queries are let go, results stay."""
        in_flight, stopped = await self.store.runs.stop_batch(batch.id, time.time(), cancelled=True)
        await self.engine.scheduler.stop_lane(batch.id, in_flight)
        self.engine.notify_stopped([batch.id])
        if stopped:
            await log_stopped(self.store, [batch.id], "cancelled")

    # -- internals ----------------------------------------------------------------------------

    async def _idempotent(self, caller: Caller, key: str, digest: str) -> BatchRecord | None:
        earlier = await self.store.jobs.find_by_idempotency_key(caller.account, key)
        if earlier is None:
            return None
        if earlier.request_hash != digest:
            raise Conflict(
                "This Idempotency-Key was used for a different batch",
                f"Batch {earlier.id} was created with this key from another body.",
            )
        return earlier

    def _settings(self, body: dict[str, Any]) -> BatchSettings:
        """Validated batch settings (query_concurrency bounded by this server's maximum)."""
        try:
            settings = BatchSettings.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first["loc"]) or "body"
            raise SpecError(name, first["msg"]) from exc
        if settings.query_concurrency > self.settings.max_query_concurrency:
            raise SpecError(
                "query_concurrency",
                f"query_concurrency must be at most {self.settings.max_query_concurrency}",
            )
        return settings

    async def _columns(self, batch: BatchRecord) -> Columns:
        """``schedule_id`` plus the union of the batch's fields, typed where sources agree."""
        ids = list(batch.columns)
        types: dict[str, str] = {}
        names: dict[str, str] = {}
        sources = self.engine.sources
        for ds_id in sources:
            for info in (await sources.fields(ds_id)).values():
                if info.field_id in ids:
                    names.setdefault(info.field_id, info.field_name)
                    if types.setdefault(info.field_id, info.data_type) != info.data_type:
                        types[info.field_id] = "string"
        return Columns(
            ids=["schedule_id", *ids],
            names=["schedule_id", *(names.get(i, i) for i in ids)],
            data_types=["string", *(types.get(i, "string") for i in ids)],
        )


def _batch_shown(answer: object) -> str | None:
    """The batch a kept answer shows, forgotten when it stops."""
    return answer.id if isinstance(answer, BatchRecord) else None
