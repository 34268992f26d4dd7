"""Single queries: run one, find it, wait for it, answer with its status or a page of its rows."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from querybatch.domain.batch import PlannedQuery, batch_query_position
from querybatch.domain.fields import FieldInfo
from querybatch.domain.query import DataRequest, QuerySpec, SpecError, build_spec
from querybatch.domain.status import QueryStatus
from querybatch.engine.coalesce import Coalescer
from querybatch.engine.result_rows import ResultRows, RowChunks, no_rows
from querybatch.engine.service import Caller, Engine
from querybatch.errors import BadRequest, Conflict, ResultsUnavailable, StatusNotFound
from querybatch.store.history import HistoryEntry
from querybatch.store.records import QueryRecord

__all__ = [
    "HistoryEntry",
    "HistoryPage",
    "Queries",
    "QueryAnswer",
    "QueryRecord",
    "QueryRows",
    "QueryState",
]

ENDED_QUERIES_KEPT = 20_000


@dataclass(frozen=True, slots=True)
class QueryState:
    """A query answered with its status (no rows: not yet, not at all, or not for this key)."""

    query: QueryRecord
    workflow: tuple[int, int]  # the tenant's sub-queries waiting and running


@dataclass(frozen=True, slots=True)
class QueryRows:
    """A successful query answered with its rows: what its fields are, and a reader of them."""

    query: QueryRecord
    fields: list[FieldInfo]
    reader: ResultRows

    @property
    def total(self) -> int:
        """How many rows the query has."""
        result = self.query.result
        return result.total_rows if result is not None else 0

    def read(self, offset: int, end: int) -> RowChunks:
        """Rows ``offset`` to ``end - 1``, chunk by chunk."""
        result = self.query.result
        if result is None:
            return no_rows()
        return self.reader.read(result.id, offset, end)


QueryAnswer = QueryState | QueryRows


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a key's recent queries, newest first, and whether more follow."""

    entries: list[HistoryEntry]
    more: bool


def _not_found(schedule_id: str) -> StatusNotFound:
    return StatusNotFound(
        f"No query with schedule_id '{schedule_id}'",
        "It never existed for this account, or its results expired.",
    )


class Queries:
    """Every behaviour of a single query: ``/query/data``, ``/query/status``, ``/query/results``.

    Clients poll: identical reads in flight together are made once (a :class:`Coalescer`),
    and a query that ended, which never changes again until it expires, is remembered for a
    while, so that polling it costs no store read.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self.rows = ResultRows(engine.store)
        self._reads = Coalescer(engine.settings.poll_freshness, tag_of=_batch_of)
        engine.listen_stopped(self._reads.forget)  # a stopped batch is seen so at once
        self._ended: OrderedDict[tuple[str, str], tuple[QueryRecord, float]] = OrderedDict()

    # -- what the routes call -----------------------------------------------------------------

    async def data(
        self, caller: Caller, request: DataRequest, request_id: str, *, sync_timeout_given: bool
    ) -> QueryAnswer:
        """Run the query of a data request and wait up to its ``sync_timeout`` for the end.

        A request naming the schedule id of a live query answers that query instead (waiting
        only when it gave ``sync_timeout`` itself); one naming an unknown schedule id and no
        data source is STATUS_NOT_FOUND; a query that cannot run is a BAD_REQUEST.
        """
        if request.schedule_id:
            existing = await self.find(caller, request.schedule_id)
            if existing is not None:
                wait = request.sync_timeout if sync_timeout_given else 0
                return await self._answer(await self.wait(existing, wait), rows=True)
            if not request.ds_id:
                raise _not_found(request.schedule_id)
        try:
            spec = await self.plan(request)
        except SpecError as exc:
            raise BadRequest(f"Invalid value for parameter '{exc.parameter}'", str(exc)) from exc
        query = await self.submit(caller, request, spec, request_id)
        if query.request_id != request_id:
            # Joined a running query or reused an ended one: this request id names it too.
            await self.store.requests.add(caller.account, request_id, query.id, time.time())
        return await self._answer(await self.wait(query, request.sync_timeout), rows=True)

    async def status(self, caller: Caller, schedule_id: str, *, rows: bool) -> QueryAnswer:
        """A live query's status; its rows too if it succeeded and ``rows`` are allowed."""
        return await self._answer(await self.live(caller, schedule_id), rows=rows)

    async def results(self, caller: Caller, schedule_id: str) -> QueryRows:
        """A live query's rows; QUERY_RESULTS_UNAVAILABLE unless it succeeded."""
        query = await self.live(caller, schedule_id)
        if query.status is not QueryStatus.SUCCESS or query.result is None:
            raise ResultsUnavailable(
                f"Query '{schedule_id}' has no results",
                f"Its status is {query.status.value}; results exist once it is SUCCESS.",
            )
        return await self._rows(query)

    async def history(
        self,
        caller: Caller,
        *,
        ds_ids: list[str] | None,
        after: tuple[float, str] | None,
        limit: int,
    ) -> HistoryPage:
        """The caller's key's queries whose results live, newest first, ``limit`` at a time
        after ``after`` (only of ``ds_ids`` when given)."""
        entries = await self.store.history.page(
            caller.account,
            caller.key_id,
            ds_ids=ds_ids,
            after=after,
            now=time.time(),
            limit=limit + 1,
        )
        return HistoryPage(entries[:limit], len(entries) > limit)

    # -- the steps ----------------------------------------------------------------------------

    async def live(self, caller: Caller, schedule_id: str) -> QueryRecord:
        """The caller's query, or STATUS_NOT_FOUND when unknown, another tenant's or expired."""
        query = await self._reads.read(
            ("query", caller.account, schedule_id), lambda: self.find(caller, schedule_id)
        )
        if query is None:
            raise _not_found(schedule_id)
        return query

    async def find(
        self, caller: Caller, ident: str, *, request_ids: bool = True
    ) -> QueryRecord | None:
        """A live query of the caller's tenant by schedule id, or by any request id it was
        handed out under (unless ``request_ids`` is False: then only by its first)."""
        key = (caller.account, ident)
        now = time.time()
        known = self._ended.get(key)
        if known is not None:
            if known[1] >= now:
                self._ended.move_to_end(key)
                return known[0]
            del self._ended[key]
        query = await self.store.jobs.get_query(caller.account, ident, now)
        if query is None and (numbered := batch_query_position(ident)) is not None:
            # Of a large batch, stored behind its answer: there soon, if not yet.
            batch_id, position = numbered
            if await self.engine.batch_storing.wait_stored(caller.account, batch_id, position):
                query = await self.store.jobs.get_query(caller.account, ident, now)
        if query is None and request_ids:
            schedule_id = await self.store.requests.schedule_id_of(caller.account, ident)
            if schedule_id is not None:
                query = await self.store.jobs.get_query(caller.account, schedule_id, now)
        if query is not None and query.status.is_final:
            # In a batch still running, the query cannot expire before a full TTL from now.
            valid_until = query.expires_at or now + min(self.settings.result_ttl, 60)
            self._ended[key] = (query, valid_until)
            if len(self._ended) > ENDED_QUERIES_KEPT:
                self._ended.popitem(last=False)
        return query

    async def plan(self, request: DataRequest) -> QuerySpec:
        """The query a data request describes, checked against its data source."""
        spec = build_spec(request, self.engine.today())
        spec = await self.engine.planner.resolve_accounts(spec)
        await self.engine.planner.check(spec)
        return spec

    async def submit(
        self, caller: Caller, request: DataRequest, spec: QuerySpec, request_id: str
    ) -> QueryRecord:
        """Start the query of a data request, or answer from the cache when allowed to."""
        schedule_id = request.schedule_id or spec.derived_schedule_id()
        existing = await self.find(caller, schedule_id, request_ids=False)
        if existing is not None:
            return existing
        now = time.time()
        planned = PlannedQuery.whole(schedule_id, spec)
        cached = None
        if request.cache_minutes:
            cached = await self.store.jobs.find_cached(
                caller.account,
                planned.fingerprint,
                now - request.cache_minutes * 60,
                now,
            )
        try:
            await self.store.jobs.create_batch(
                batch_id="qry_" + secrets.token_hex(6),
                kind="single",
                account=caller.account,
                key_id=caller.key_id,
                settings=None,
                query_concurrency=1,
                timeout_seconds=self.settings.query_timeout,
                schedule_time=now,
                subqueries=[planned],
                now=now,
                request_id=request_id,
                cached=cached,
            )
        except Conflict:
            # Two requests for the same schedule id raced; the first one's query is the answer.
            existing = await self.find(caller, schedule_id)
            if existing is None:
                raise
            return existing
        self.engine.scheduler.wake()
        query = await self.find(caller, schedule_id)
        assert query is not None
        return query

    async def wait(self, query: QueryRecord, timeout: float) -> QueryRecord:
        """Wait up to ``timeout`` seconds for a query to end; its freshest record."""
        if query.status.is_final or timeout <= 0:
            return query

        async def stopped() -> bool:
            batch = await self.store.jobs.batch_status(query.batch_id)
            return batch is None or batch == "STOPPED"

        await self.engine.waiters.wait(query.batch_id, timeout, stopped)
        fresh = await self.store.jobs.get_query(query.account, query.schedule_id, time.time())
        return fresh or query

    async def _answer(self, query: QueryRecord, *, rows: bool) -> QueryAnswer:
        if rows and query.status is QueryStatus.SUCCESS:
            return await self._rows(query)
        account = query.account
        workflow = await self._reads.read(
            ("workflow", account), lambda: self.store.jobs.workflow(account)
        )
        return QueryState(query, workflow)

    async def _rows(self, query: QueryRecord) -> QueryRows:
        fields = await self.engine.planner.field_metadata(query.ds_id, list(query.spec.fields))
        return QueryRows(query, fields, self.rows)


def _batch_of(answer: object) -> str | None:
    """The batch of a kept query, forgotten when it stops."""
    return answer.batch_id if isinstance(answer, QueryRecord) else None
