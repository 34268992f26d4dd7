"""Running one sub-query: ask the connector, store its rows in chunks, classify how it ended.

The runner never raises for a failing data source: every failure becomes an outcome (with
retries and backoff for transient ones), so an executor loop never dies of one sub-query.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from querybatch.connectors.base import INLINE_WORK, Connector, FetchRequest
from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import FieldInfo, Row
from querybatch.domain.filters import compile_filter, sort_rows
from querybatch.domain.precision import RowRounder, row_rounder
from querybatch.domain.status import QueryStatus
from querybatch.engine.executors.fetch import fetch_request
from querybatch.engine.executors.throttle import SourceThrottle
from querybatch.errors import (
    AccountErrors,
    ConnectorError,
    QueryBatchError,
    TransientConnectorError,
    UpstreamRateLimited,
)
from querybatch.store.records import ErrorInfo, NewResult, Outcome, WorkItem
from querybatch.store.results import CHUNK_ROWS, encode_rows
from querybatch.store.runs import new_result_id

log = logging.getLogger(__name__)

MAX_ROUNDERS = 1024

ChunkWriter = Callable[[str, int, Sequence[Row]], Awaitable[None]]
ChunkDropper = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently transient connector errors are retried."""

    retries: int = 3
    backoff: float = 0.5
    rate_limit_waits: int = 20


class _Failed(Exception):
    """Ends a run with FAILURE and the given error."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Runner:
    """Runs sub-queries against the configured data sources."""

    def __init__(
        self,
        sources: SourceRegistry,
        write_chunk: ChunkWriter,
        drop_chunks: ChunkDropper,
        policy: RetryPolicy,
        throttle: SourceThrottle,
    ) -> None:
        self.sources = sources
        self.write_chunk = write_chunk
        self.drop_chunks = drop_chunks
        self.policy = policy
        self.throttle = throttle
        self._rounders: dict[tuple[str, tuple[str, ...]], RowRounder | None] = {}

    async def run(self, item: WorkItem) -> Outcome:
        """Run one sub-query to its end and say how it ended (never raises but on cancel)."""
        began = time.monotonic()
        try:
            request = fetch_request(item.spec)
            connector = self.sources.get(request.ds_id)
            if connector is None:
                raise _Failed(
                    ErrorInfo("CONNECTOR_ERROR", f"Unknown data source {request.ds_id!r}")
                )
            return await self._run_with_exclusions(item, connector, request, began)
        except _Failed as failed:
            return self._outcome(item, QueryStatus.FAILURE, error=failed.error)
        except Exception as exc:  # a bug in a connector must not take the executor down
            log.exception("sub-query %s failed unexpectedly", item.query_id)
            error = ErrorInfo("INTERNAL_ERROR", "The query failed unexpectedly", repr(exc)[:2048])
            return self._outcome(item, QueryStatus.FAILURE, error=error)

    async def _run_with_exclusions(
        self, item: WorkItem, connector: Connector, request: FetchRequest, began: float
    ) -> Outcome:
        excluded: dict[str, str] = {}
        while True:
            try:
                result = await self._fetch_with_retries(connector, request, began)
            except AccountErrors as exc:
                if not item.exclude_account_errors:
                    raise _Failed(_error(exc)) from exc
                excluded.update(exc.failures)
                accounts = request.accounts or await _all_accounts(connector, request)
                remaining = tuple(a for a in accounts if a not in excluded)
                if not remaining:
                    raise _Failed(_error(exc)) from exc
                request = replace(request, accounts=remaining)
                continue
            return self._outcome(
                item, QueryStatus.SUCCESS, result=result, excluded=excluded or None
            )

    async def _fetch_with_retries(
        self, connector: Connector, request: FetchRequest, began: float
    ) -> NewResult:
        failures = rate_limited = 0
        while True:
            await self.throttle.wait(request.ds_id)
            try:
                return await self._collect(connector, request, began)
            except UpstreamRateLimited as exc:
                rate_limited += 1
                if rate_limited > self.policy.rate_limit_waits:
                    raise _Failed(_error(exc)) from exc
                self.throttle.pause(request.ds_id, exc.retry_after)
            except TransientConnectorError as exc:
                failures += 1
                if failures > self.policy.retries:
                    raise _Failed(_error(exc)) from exc
                delay = self.policy.backoff * 2 ** (failures - 1)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            except AccountErrors:
                raise
            except ConnectorError as exc:
                raise _Failed(_error(exc)) from exc

    async def _collect(
        self, connector: Connector, request: FetchRequest, began: float
    ) -> NewResult:
        """Stream the connector's rows into fixed-size chunks; the last ones stay in memory."""
        result_id = new_result_id()
        writer = _ChunkBuffer(result_id, self.write_chunk)
        try:
            async for rows in self._rows(connector, request):
                await writer.add(rows)
        except BaseException:
            if writer.flushed:
                await asyncio.shield(self.drop_chunks(result_id))
            raise
        return NewResult(
            id=result_id,
            total_rows=writer.total,
            total_columns=len(request.fields),
            run_seconds=round(time.monotonic() - began, 3),
            last_chunks=writer.pending(),
        )

    async def _rows(
        self, connector: Connector, request: FetchRequest
    ) -> AsyncIterator[Sequence[Row]]:
        """The connector's rows with what it does not push down (filter, order, limit) applied."""
        chunks: AsyncIterator[Sequence[Row]] = connector.fetch(request)
        fields = await self.sources.fields(request.ds_id)
        rounder = self._rounder(request.ds_id, request.fields, fields)
        if rounder is not None:
            chunks = _rounded(chunks, rounder)
        if request.filter is not None and "filter" not in connector.pushdown:
            keep = compile_filter(
                request.filter, request.fields, {f: fields[f].data_type for f in request.fields}
            )
            conditions = sum(len(group) for group in request.filter.groups)
            chunks = _filtered(chunks, keep, conditions)
        limit = request.max_rows
        if request.order_rows:
            rows = [row async for chunk in chunks for row in chunk]
            order = (rows, request.order_rows, request.fields, limit)
            # Sorting grows with the result: a large one in a thread, so the loop stays free.
            collected = (
                await asyncio.to_thread(sort_rows, *order)
                if len(rows) > INLINE_WORK
                else sort_rows(*order)
            )
            for start in range(0, len(collected), CHUNK_ROWS):
                yield collected[start : start + CHUNK_ROWS]
            return
        produced = 0
        async for chunk in chunks:
            if limit is not None and produced + len(chunk) >= limit:
                yield chunk[: limit - produced]
                return
            produced += len(chunk)
            yield chunk

    def _rounder(
        self, ds_id: str, columns: tuple[str, ...], fields: dict[str, FieldInfo]
    ) -> RowRounder | None:
        """The rounder of rows of ``columns`` (built once per field list: a batch's
        sub-queries share a few)."""
        key = (ds_id, columns)
        if key in self._rounders:
            return self._rounders[key]
        if len(self._rounders) >= MAX_ROUNDERS:
            self._rounders.clear()
        rounder = self._rounders[key] = row_rounder(columns, fields)
        return rounder

    @staticmethod
    def _outcome(
        item: WorkItem,
        status: QueryStatus,
        *,
        result: NewResult | None = None,
        error: ErrorInfo | None = None,
        excluded: dict[str, str] | None = None,
    ) -> Outcome:
        return Outcome(
            query_id=item.query_id,
            batch_id=item.batch_id,
            attempt=item.attempt,
            status=status,
            end_time=time.time(),
            ds_id=item.spec.ds_id,
            result=result,
            error=error,
            excluded_accounts=excluded,
        )


class _ChunkBuffer:
    """Cuts a stream of row chunks into CHUNK_ROWS-row chunks, writing all but the tail."""

    def __init__(self, result_id: str, write: ChunkWriter) -> None:
        self.result_id = result_id
        self.write = write
        self.rows: list[Row] = []
        self.seq = 0
        self.total = 0
        self.flushed = False

    async def add(self, rows: Sequence[Row]) -> None:
        self.rows.extend(rows)
        self.total += len(rows)
        # Keep one full chunk back: a result that fits in it is written with the outcome,
        # in the same transaction, which is the common case for batch sub-queries.
        while len(self.rows) > CHUNK_ROWS:
            chunk, self.rows = self.rows[:CHUNK_ROWS], self.rows[CHUNK_ROWS:]
            await self.write(self.result_id, self.seq, chunk)
            self.flushed = True
            self.seq += 1

    def pending(self) -> tuple[tuple[int, int, bytes], ...]:
        if not self.rows:
            return ()
        return ((self.seq, len(self.rows), encode_rows(self.rows)),)


async def _rounded(
    chunks: AsyncIterator[Sequence[Row]], rounder: RowRounder
) -> AsyncIterator[Sequence[Row]]:
    """Money and other fixed-precision numbers rounded to their field's decimals."""
    async for chunk in chunks:
        if len(chunk) > INLINE_WORK:
            yield await asyncio.to_thread(rounder, chunk)
        else:
            yield rounder(chunk)


async def _filtered(
    chunks: AsyncIterator[Sequence[Row]], keep: Callable[[Row], bool], conditions: int
) -> AsyncIterator[Sequence[Row]]:
    async for chunk in chunks:
        # A tenant's filter (regular expressions among them) runs off the event loop, unless
        # the chunk is too small for that to matter.
        if len(chunk) * (1 + conditions) > INLINE_WORK:
            kept = await asyncio.to_thread(_kept, chunk, keep)
        else:
            kept = _kept(chunk, keep)
        if kept:
            yield kept


def _kept(chunk: Sequence[Row], keep: Callable[[Row], bool]) -> list[Row]:
    return [row for row in chunk if keep(row)]


async def _all_accounts(connector: Connector, request: FetchRequest) -> tuple[str, ...]:
    logins = await connector.accounts(request.users)
    return tuple(dict.fromkeys(a.account_id for login in logins for a in login.accounts))


def _error(exc: QueryBatchError) -> ErrorInfo:
    description = exc.description
    if isinstance(exc, AccountErrors):
        description = "; ".join(f"{a}: {why}" for a, why in sorted(exc.failures.items()))
    return ErrorInfo(exc.code, exc.message[:255], (description or None) and description[:2048])
