"""Doubles for the core's unit tests: a clock, an executor and a data source the test drives.

Everything here talks to the real store; only the edges (time, where runs happen, what a
data source answers) are under the test's control. Store calls are gathered here so that a
change of how the store is called touches one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, TypeVar

import sqlalchemy.exc
from sqlalchemy import Connection, event

from querybatch.connectors.base import Connector, ConnectorConfig, FetchRequest
from querybatch.domain.batch import BatchSettings, PlannedQuery
from querybatch.domain.fields import Account, FieldInfo, Login, Row
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import QueryStatus
from querybatch.engine.executors.base import DoneCallback, Executor
from querybatch.engine.executors.recorder import StoppedCallback
from querybatch.errors import ConnectorError
from querybatch.settings import Settings
from querybatch.store.codec import encode_spec
from querybatch.store.records import (
    BatchRecord,
    ErrorInfo,
    NewResult,
    Outcome,
    QueryRecord,
    WorkItem,
)
from querybatch.store.results import decode_rows, encode_rows
from querybatch.store.runs import new_result_id
from querybatch.store.store import Store

WAIT = 10.0
"""How long an event may take before the test counts as hung (a guard, never a measure)."""

DAY = date(2026, 1, 1)

T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """Await something that must happen; fail instead of hanging if it never does."""
    return await asyncio.wait_for(awaitable, WAIT)


async def until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait until ``condition`` holds, re-checking each time ``changed`` is set."""

    async def loop() -> None:
        while not condition():
            await changed.wait()
            changed.clear()

    await within(loop())


class FakeClock:
    """Wall-clock time that moves only when the test moves it."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


# -- the store ------------------------------------------------------------------------------


def spec(
    account: str, day: date = DAY, fields: Sequence[str] = ("date", "clicks")
) -> dict[str, Any]:
    """A stored sub-query spec of the fake data source."""
    return {
        "ds_id": "FAKE",
        "accounts": [account],
        "start_date": day.isoformat(),
        "end_date": day.isoformat(),
        "fields": list(fields),
        "max_rows": 1_000_000,  # more than any test returns
    }


async def create_batch(
    store: Store,
    batch_id: str,
    *,
    account: str = "acme",
    size: int = 3,
    query_concurrency: int = 5,
    timeout_seconds: int = 3600,
    now: float,
    schedule_time: float | None = None,
    settings: BatchSettings | None = None,
    same_query: bool = False,
    sequence: str | None = None,
) -> BatchRecord:
    """Store a batch of ``size`` sub-queries (in ``sequence``, if given).

    With ``same_query`` they are all one query (one spec, one fingerprint, in every batch).
    """
    subqueries = []
    for i in range(1, size + 1):
        canonical = spec("acc-1" if same_query else f"acc-{i}")
        query = QuerySpec.model_validate(canonical)
        subqueries.append(
            PlannedQuery(
                f"{batch_id}_query_{i}",
                query,
                query.accounts,
                query.start_date,
                query.end_date,
                encode_spec(canonical),
                "fp-same" if same_query else f"{batch_id}-fp{i}",
            )
        )
    return await store.jobs.create_batch(
        batch_id=batch_id,
        kind="batch",
        account=account,
        key_id="key_1",
        settings=settings or BatchSettings(),
        query_concurrency=query_concurrency,
        timeout_seconds=timeout_seconds,
        schedule_time=now if schedule_time is None else schedule_time,
        sequence=sequence,
        subqueries=subqueries,
        now=now,
    )


async def claim(
    store: Store, batch_id: str, limit: int, now: float, lease_seconds: float = 30.0
) -> list[WorkItem]:
    """Claim sub-queries of a batch as a scheduler does (SCHEDULED -> QUEUED)."""
    lanes = await store.runs.active_lanes()
    lane = next(lane for lane in lanes if lane.batch_id == batch_id)
    return await store.runs.claim(lane, limit, now, now + lease_seconds)


async def requeue(store: Store, now: float, max_attempts: int = 4) -> int:
    """Put back sub-queries whose lease lapsed before ``now``."""
    return await store.runs.requeue(now, max_attempts=max_attempts)


async def stop_batch(store: Store, batch_id: str, now: float, *, cancelled: bool) -> list[int]:
    """Stop a batch in the store; the sub-queries whose runs must be let go."""
    in_flight, _ = await store.runs.stop_batch(batch_id, now, cancelled=cancelled)
    return in_flight


async def record(
    store: Store,
    started: Sequence[WorkItem] = (),
    outcomes: Sequence[Outcome] = (),
    *,
    now: float,
    lease_seconds: float = 30.0,
) -> tuple[list[bool], list[bool], list[str]]:
    """Write run starts and ends as the recorder does."""
    return await store.runs.record_runs(
        [(item, now) for item in started],
        list(outcomes),
        now + lease_seconds,
        now,
    )


async def write_chunk(store: Store, result_id: str, seq: int, rows: Sequence[Row]) -> None:
    """Write a full chunk of a result, as a run does before it ends."""
    await store.results.write_chunk(result_id, seq, rows, time.time())


async def drop_chunks(store: Store, result_id: str) -> None:
    """Remove the chunks of a result, as a run does when it fails after writing some."""
    await store.results.drop(result_id)


async def chunks_of(store: Store, result_id: str) -> list[bytes]:
    """The stored chunks of a result."""
    return await store.results.read_chunks(result_id, 0, 1_000_000)


async def queries_of(store: Store, batch_id: str) -> list[QueryRecord]:
    """Every sub-query of a batch, in order."""
    return await store.jobs.batch_queries(batch_id, 0, 100_000)


async def batch_of(store: Store, batch_id: str, account: str = "acme") -> BatchRecord:
    """A batch as the store has it now."""
    batch = await store.jobs.get_batch(account, batch_id, time.time())
    assert batch is not None
    return batch


async def rows_of(store: Store, query: QueryRecord) -> list[list[Any]]:
    """Every stored row of a query's result."""
    assert query.result is not None
    payloads = await store.results.read_chunks(query.result.id, 0, 1_000_000)
    return [row for payload in payloads for row in decode_rows(payload)]


def outcome(item: WorkItem, status: QueryStatus, now: float, rows: int = 1) -> Outcome:
    """How a run of ``item`` ended: a ``rows``-row result on SUCCESS, an error otherwise."""
    result = error = None
    if status == QueryStatus.SUCCESS:
        payload = encode_rows([(DAY.isoformat(), 1)] * rows)
        result = NewResult(new_result_id(), rows, 2, 0.0, ((0, rows, payload),))
    else:
        error = ErrorInfo("CONNECTOR_ERROR", "The data source failed")
    return Outcome(
        query_id=item.query_id,
        batch_id=item.batch_id,
        attempt=item.attempt,
        status=status,
        end_time=now,
        ds_id="FAKE",
        result=result,
        error=error,
    )


@contextlib.contextmanager
def store_outage(store: Store) -> Iterator[None]:
    """Every write transaction fails while inside, as when the database's disk has gone."""

    def refuse(conn: Connection) -> None:
        if conn.get_execution_options().get("qb_write"):
            raise sqlalchemy.exc.OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("disk I/O error")
            )

    event.listen(store.db.engine, "begin", refuse, insert=True)
    try:
        yield
    finally:
        event.remove(store.db.engine, "begin", refuse)


# -- the executor ---------------------------------------------------------------------------


class FakeExecutor(Executor):
    """An executor that runs nothing itself: it holds what it is handed until the test ends it.

    ``finish`` writes a start and an outcome to the store as a real run would, then frees the
    slot (and reports the batches those outcomes stopped); ``lose`` frees the slot with nothing
    written, as a run whose process died.
    """

    in_process: ClassVar[bool] = True
    scale_out: ClassVar[bool] = False

    def __init__(self, store: Store, clock: FakeClock, slots: int = 100) -> None:
        self.store = store
        self.clock = clock
        self.slots = slots
        self.submitted: list[WorkItem] = []
        self.cancelled: list[int] = []
        self.adopted: list[WorkItem] = []
        self._running: dict[int, WorkItem] = {}
        self._began: set[tuple[int, int]] = set()
        self._on_done: DoneCallback | None = None
        self._on_stopped: StoppedCallback | None = None

    @classmethod
    def preflight(cls, settings: Settings, store: Store) -> None:
        """Nothing to check: the test runs nothing through it."""

    async def start(self, on_done: DoneCallback, on_stopped: StoppedCallback) -> None:
        self._on_done = on_done
        self._on_stopped = on_stopped

    def capacity(self) -> int:
        return self.slots - len(self._running)

    def submit(self, items: Sequence[WorkItem]) -> None:
        for item in items:
            assert item.query_id not in self._running, f"{item.query_id} handed out twice"
            self.submitted.append(item)
            self._running[item.query_id] = item

    async def cancel(self, query_ids: Collection[int]) -> None:
        self.cancelled.extend(query_ids)
        self._done([self._running.pop(q) for q in query_ids if q in self._running])

    def running(self) -> list[WorkItem]:
        return list(self._running.values())

    async def stop(self) -> None:
        self._running.clear()

    def adopt(self, items: Sequence[WorkItem]) -> None:
        self.adopted.extend(items)
        self._running.update((item.query_id, item) for item in items)

    def forget(self) -> None:
        self._running.clear()

    # -- what the test does -------------------------------------------------------------------

    def running_of(self, batch_id: str) -> list[WorkItem]:
        """The runs of one batch in progress, in the order they were handed over."""
        return [item for item in self._running.values() if item.batch_id == batch_id]

    async def begin(self, items: Sequence[WorkItem]) -> None:
        """Write that these runs started (QUEUED -> RUNNING), as a run's first write does."""
        began, _, _ = await record(self.store, items, now=self.clock())
        assert all(began)
        self._began.update((item.query_id, item.attempt) for item in items)

    async def finish(
        self, items: Sequence[WorkItem], status: QueryStatus = QueryStatus.SUCCESS
    ) -> list[bool]:
        """End these runs as ``status``; returns which outcomes the store applied."""
        await self.begin([i for i in items if (i.query_id, i.attempt) not in self._began])
        _, applied, stopped = await record(
            self.store, (), [outcome(i, status, self.clock()) for i in items], now=self.clock()
        )
        self._done([self._running.pop(i.query_id) for i in items if i.query_id in self._running])
        if stopped and self._on_stopped is not None:
            self._on_stopped(stopped)
        return applied

    def lose(self, items: Sequence[WorkItem]) -> None:
        """These runs died without a word to the store: their slots free, their leases run."""
        self._done([self._running.pop(i.query_id) for i in items])

    def _done(self, items: list[WorkItem]) -> None:
        if items and self._on_done is not None:
            self._on_done(items)


class PrefetchingExecutor(FakeExecutor):
    """A fake executor that lets the scheduler claim ahead of its free slots (as the local one)."""

    prefetch = True


class BrokerExecutor(FakeExecutor):
    """A fake executor that hands sub-queries to a queue, as the Celery one: what it was handed
    is not the scheduler's to renew (the workers renew what they run)."""

    in_process = False
    scale_out = True

    def running(self) -> list[WorkItem]:
        return []


# -- the data source ------------------------------------------------------------------------

FIELDS = (
    FieldInfo("date", "Date", "dim", "date"),
    FieldInfo("account", "Account", "dim"),
    FieldInfo("clicks", "Clicks", "met", "int"),
)


@dataclass
class Hold:
    """A fetch step that waits until released, then answers as usual (unless cancelled)."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False


Step = BaseException | Hold | list[Row]


class ScriptedConnector(Connector):
    """A data source that answers as the test scripts it, like procrastinate's in-memory one.

    Each fetch takes the next step of ``script``: an exception to raise, a :class:`Hold` to
    wait at, or the rows to answer. With the script used up it answers one row per account
    and day. Every request is kept in ``calls``.
    """

    def __init__(self, ds_id: str = "FAKE", accounts: Sequence[str] = ("acc-1", "acc-2")) -> None:
        super().__init__(ds_id, ConnectorConfig())
        self.account_ids = tuple(accounts)
        self.script: deque[Step] = deque()
        self.calls: list[FetchRequest] = []

    async def fields(self) -> Sequence[FieldInfo]:
        return FIELDS

    async def accounts(self, users: Sequence[str] = ()) -> Sequence[Login]:
        return [
            Login(
                "user@example.com", "User", tuple(Account(a, a.upper()) for a in self.account_ids)
            )
        ]

    def check_settings(self, settings: Any) -> None:
        for key in settings:
            if key != "rows":
                raise ConnectorError(f"Unknown setting {key!r}: only rows is allowed")

    async def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        self.calls.append(request)
        step = self.script.popleft() if self.script else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Hold):
            step.entered.set()
            try:
                await step.release.wait()
            except asyncio.CancelledError:
                step.cancelled = True
                raise
            step = None
        rows = self.default_rows(request) if step is None else step
        for start in range(0, len(rows), 1000):
            yield rows[start : start + 1000]

    def default_rows(self, request: FetchRequest) -> list[Row]:
        """One row per account and day: (date, account, 1 click), as the fields ask."""
        rows: list[Row] = []
        day = request.start_date
        while day <= request.end_date:
            for account in request.accounts or self.account_ids:
                values: dict[str, Any] = {"date": day.isoformat(), "account": account, "clicks": 1}
                rows.append(tuple(values[f] for f in request.fields))
            day += timedelta(days=1)
        return rows


class FilteringConnector(ScriptedConnector):
    """A scripted source that says it applies filters itself."""

    pushdown = frozenset({"filter"})
