"""The engine as the API and the CLI use it: submit, wait, cancel; start and stop."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.batch import BatchSettings, new_batch_id
from querybatch.domain.callback_policy import CallbackAllow, CallbackRefused
from querybatch.domain.query import DataRequest, QuerySpec, SpecError, build_spec
from querybatch.engine.batches import plan_batch, request_hash
from querybatch.engine.callback_targets import CallbackTargets
from querybatch.engine.callbacks import CallbackSender
from querybatch.engine.executors.base import Executor
from querybatch.engine.executors.local import LocalExecutor
from querybatch.engine.leader import Leadership
from querybatch.engine.planner import Planner
from querybatch.engine.recorder import Recorder
from querybatch.engine.scheduler import Scheduler, SchedulerSettings
from querybatch.engine.throttle import SourceThrottle
from querybatch.engine.waiters import Waiters
from querybatch.engine.worker import build_local_executor
from querybatch.errors import ConfigurationError, Conflict
from querybatch.settings import Settings
from querybatch.store.records import BatchRecord, QueryRecord
from querybatch.store.store import Store

log = logging.getLogger(__name__)

ENDED_QUERIES_KEPT = 20_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the tenant (account) and the key."""

    account: str
    key_id: str


class Engine:
    """Owns the scheduler, the executor and the run recorder of this node."""

    def __init__(self, settings: Settings, store: Store, sources: SourceRegistry) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.planner = Planner(sources)
        self.waiters = Waiters()
        self.throttle = SourceThrottle()
        self.recorder = Recorder(store, settings.lease_seconds, self._stopped)
        self.executor: Executor = self._build_executor()
        scale_out = settings.executor == "celery"
        self.scheduler = Scheduler(
            store,
            self.executor,
            SchedulerSettings(
                account_concurrency=settings.account_concurrency,
                lease_seconds=settings.lease_seconds,
                claim_lease_seconds=(
                    settings.queued_lease_seconds if scale_out else settings.lease_seconds
                ),
                tick_seconds=settings.tick_seconds,
                sweep_seconds=settings.sweep_seconds,
                max_attempts=settings.retries + 1,
            ),
            self._stopped,
            Leadership(store.db) if scale_out else None,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._ended: OrderedDict[tuple[str, str], tuple[QueryRecord, float]] = OrderedDict()
        self._callback_task: asyncio.Task[None] | None = None
        self._batches_stopped = asyncio.Event()
        self.callbacks: CallbackSender | None = None
        try:
            allow = CallbackAllow.parse(settings.callback_allow)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.callback_targets = CallbackTargets(allow)

    def _build_executor(self) -> Executor:
        if self.settings.executor == "celery":
            from querybatch.engine.executors.celery import CeleryExecutor

            return CeleryExecutor(self.settings, self.store)
        return build_local_executor(
            self.settings,
            self.store,
            self.sources,
            self.recorder,
            self.throttle,
            self.settings.workers,
        )

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover from a previous run of this node, then start scheduling."""
        if isinstance(self.executor, LocalExecutor):
            self.store.db.hold_exclusive_lock()
            # Nothing runs in this process yet: whatever the store says is claimed or running
            # was lost with the previous process and runs again, from scratch.
            moved = await self.store.runs.requeue(
                time.time(),
                everything=True,
                max_attempts=self.settings.retries + 1,
            )
            if moved:
                log.info("put %d interrupted sub-queries back on the schedule", moved)
            await self.store.upkeep.sweep( time.time(), 0.0)
        secret = await self.store.keys.server_secret( self.settings.secret)
        self.callbacks = CallbackSender(self.store, secret, self.callback_targets)
        self.recorder.start()
        await self.executor.start(self.scheduler.on_done)
        self._loop_task = asyncio.create_task(self.scheduler.run(), name="qb-scheduler")
        self._callback_task = asyncio.create_task(self._callbacks_forever(), name="qb-callbacks")

    async def stop(self) -> None:
        """Stop scheduling and running; unfinished sub-queries run again at the next start."""
        self.scheduler.stop()
        if self._loop_task is not None:
            await self._loop_task
        if self._callback_task is not None:
            self._callback_task.cancel()
            await asyncio.gather(self._callback_task, return_exceptions=True)
        if self.callbacks is not None:
            await self.callbacks.close()
        await self.executor.stop()
        await self.recorder.close()

    def leads(self) -> bool:
        """Whether this node schedules (always, on the embedded default)."""
        leadership = self.scheduler.leadership
        return leadership is None or leadership.leader

    # -- queries ----------------------------------------------------------------------------

    def today(self) -> date:
        """Today in the server's time zone (relative dates resolve against it)."""
        return datetime.now(ZoneInfo(self.settings.timezone)).date()

    async def find_query(self, caller: Caller, ident: str) -> QueryRecord | None:
        """A live query of the caller's tenant by schedule id (or by its first request id).

        A query that ended never changes again until it expires, so its record is
        remembered for a while and polling it costs no store read.
        """
        key = (caller.account, ident)
        now = time.time()
        known = self._ended.get(key)
        if known is not None:
            if known[1] >= now:
                self._ended.move_to_end(key)
                return known[0]
            del self._ended[key]
        query = await self.store.jobs.get_query( caller.account, ident, now)
        if query is not None and query.status.is_final:
            # In a batch still running, the query cannot expire before a full TTL from now.
            valid_until = query.expires_at or now + min(self.settings.result_ttl, 60)
            self._ended[key] = (query, valid_until)
            if len(self._ended) > ENDED_QUERIES_KEPT:
                self._ended.popitem(last=False)
        return query

    async def plan(self, request: DataRequest) -> QuerySpec:
        """The query a data request describes, checked against its data source."""
        spec = build_spec(request, self.today())
        await self.planner.check(spec)
        return spec

    async def submit_query(
        self, caller: Caller, request: DataRequest, spec: QuerySpec, request_id: str
    ) -> QueryRecord:
        """Start the query of a data request, or answer from the cache when allowed to."""
        schedule_id = request.schedule_id or spec.derived_schedule_id()
        existing = await self.find_query(caller, schedule_id)
        if existing is not None:
            return existing
        now = time.time()
        fingerprint = spec.fingerprint()
        cached = None
        if request.cache_minutes:
            cached = await self.store.jobs.find_cached(
                caller.account,
                fingerprint,
                now - request.cache_minutes * 60,
                now,
            )
        try:
            await self.store.jobs.create_batch(
                batch_id="qry_" + secrets.token_hex(6),
                kind="single",
                account=caller.account,
                key_id=caller.key_id,
                settings={},
                query_concurrency=1,
                timeout_seconds=self.settings.query_timeout,
                schedule_time=now,
                subqueries=[(schedule_id, spec.model_dump(mode="json"), fingerprint)],
                now=now,
                request_id=request_id,
                cached=cached,
            )
        except Conflict:
            # Two requests for the same schedule id raced; the first one's query is the answer.
            existing = await self.find_query(caller, schedule_id)
            if existing is None:
                raise
            return existing
        self.scheduler.wake()
        query = await self.find_query(caller, schedule_id)
        assert query is not None
        return query

    async def wait(self, query: QueryRecord, timeout: float) -> QueryRecord:
        """Wait up to ``timeout`` seconds for a query to end; its freshest record."""
        if query.status.is_final or timeout <= 0:
            return query

        async def stopped() -> bool:
            batch = await self.store.jobs.batch_status( query.batch_id)
            return batch is None or batch == "STOPPED"

        await self.waiters.wait(query.batch_id, timeout, stopped)
        fresh = await self.store.jobs.get_query( query.account, query.schedule_id, time.time()
        )
        return fresh or query

    # -- batches ----------------------------------------------------------------------------

    async def cancel_batch(self, batch: BatchRecord) -> None:
        """Stop a batch: nothing new starts, running sub-queries are let go, results stay."""
        in_flight, _ = await self.store.runs.stop_batch( batch.id, time.time(), cancelled=True
        )
        await self.scheduler.stop_lane(batch.id, in_flight)
        self._stopped([batch.id])

    async def submit_batch(
        self,
        caller: Caller,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> tuple[BatchRecord, bool]:
        """Validate, split and store a batch; returns it and whether it was created now.

        With an ``idempotency_key`` already used for the same body, the earlier batch is the
        answer; used for another body, it is a Conflict.
        """
        digest = request_hash(body)
        if idempotency_key:
            earlier = await self._idempotent(caller, idempotency_key, digest)
            if earlier is not None:
                return earlier, False
        settings = self.batch_settings(body)
        if settings.callback_url:
            try:
                await self.callback_targets.check_new(settings.callback_url)
            except CallbackRefused as exc:
                raise SpecError("callback_url", str(exc)) from exc
        batch_id = new_batch_id()
        planned = await plan_batch(
            batch_id,
            settings,
            body.get("queries"),  # type: ignore[arg-type]
            self.planner,
            self.today(),
            self.settings.max_batch_queries,
        )
        now = time.time()
        stored = settings.model_dump(mode="json") | {"columns": planned.columns}
        try:
            batch = await self.store.jobs.create_batch(
                batch_id=batch_id,
                kind="batch",
                account=caller.account,
                key_id=caller.key_id,
                settings=stored,
                query_concurrency=settings.query_concurrency,
                timeout_seconds=round(
                    settings.timeout_minutes * self.settings.timeout_minute_seconds
                ),
                schedule_time=settings.schedule_time.timestamp() if settings.schedule_time else now,
                subqueries=planned.subqueries,
                now=now,
                idempotency_key=idempotency_key,
                request_hash=digest,
                callback_url=settings.callback_url,
            )
        except Conflict:
            if idempotency_key:
                earlier = await self._idempotent(caller, idempotency_key, digest)
                if earlier is not None:
                    return earlier, False
            raise
        self.scheduler.wake()
        return batch, True

    async def _idempotent(self, caller: Caller, key: str, digest: str) -> BatchRecord | None:
        earlier = await self.store.jobs.find_by_idempotency_key( caller.account, key
        )
        if earlier is None:
            return None
        if earlier.request_hash != digest:
            raise Conflict(
                "This Idempotency-Key was used for a different batch",
                f"Batch {earlier.id} was created with this key from another body.",
            )
        return earlier

    def batch_settings(self, body: dict[str, Any]) -> BatchSettings:
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

    # -- internals --------------------------------------------------------------------------

    def _stopped(self, batch_ids: list[str]) -> None:
        self.waiters.notify(batch_ids)
        self._batches_stopped.set()

    async def _callbacks_forever(self) -> None:
        """Send callbacks as batches stop here, and every second for those stopped elsewhere."""
        assert self.callbacks is not None
        while True:
            try:
                await asyncio.wait_for(self._batches_stopped.wait(), 1.0)
            except TimeoutError:
                pass
            self._batches_stopped.clear()
            try:
                await self.callbacks.send_pending()
            except Exception:
                log.exception("sending batch callbacks failed; retrying")
