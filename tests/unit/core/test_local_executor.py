"""The in-process executor: runs as tasks, recorded through the recorder, let go on cancel.

The real runner, recorder and store, with the scripted data source; the test hands claimed
sub-queries over as the scheduler would and waits on the executor's done callback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from fakes import (
    DAY,
    Hold,
    ScriptedConnector,
    claim,
    create_batch,
    drop_chunks,
    queries_of,
    requeue,
    rows_of,
    stop_batch,
    store_outage,
    until,
    within,
    write_chunk,
)

from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import Row
from querybatch.domain.status import QueryStatus
from querybatch.engine.executors.local import LocalExecutor
from querybatch.engine.executors.recorder import Recorder
from querybatch.engine.executors.runner import RetryPolicy, Runner
from querybatch.engine.executors.throttle import SourceThrottle
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

LEASE = 30.0
SLOTS = 4


@dataclass
class Local:
    """A local executor on the test's store, and the runs it reported as ended."""

    store: Store
    recorder: Recorder
    executor: LocalExecutor
    done: list[WorkItem] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_done(self, items: Sequence[WorkItem]) -> None:
        self.done.extend(items)
        self.changed.set()

    async def ended(self, count: int) -> None:
        """Wait until ``count`` runs have ended and everything they handed over is written."""
        await until(lambda: len(self.done) >= count, self.changed)
        await within(self.recorder.drain())


@pytest.fixture
async def local(store: Store, sources: SourceRegistry) -> AsyncIterator[Local]:
    async def write(result_id: str, seq: int, rows: Sequence[Row]) -> None:
        await write_chunk(store, result_id, seq, rows)

    async def drop(result_id: str) -> None:
        await drop_chunks(store, result_id)

    runner = Runner(sources, write, drop, RetryPolicy(retries=0, backoff=0), SourceThrottle())
    executor = LocalExecutor(runner, store, LEASE, SLOTS)
    rig = Local(store, executor.recorder, executor)
    await executor.start(rig.on_done, lambda _ids: None)
    yield rig
    await within(executor.stop())  # closes its recorder too


async def test_a_handed_over_sub_query_runs_and_its_outcome_and_rows_are_stored(
    local: Local, store: Store
) -> None:
    await create_batch(store, "qrb_local", size=1, now=time.time())
    items = await claim(store, "qrb_local", 1, time.time())
    local.executor.submit(items)
    await local.ended(1)
    assert local.done == items
    [query] = await queries_of(store, "qrb_local")
    assert (query.status, query.attempt) == (QueryStatus.SUCCESS, 1)
    assert await rows_of(store, query) == [[DAY.isoformat(), 1]]


async def test_capacity_is_the_slots_not_taken_by_runs_in_progress(
    local: Local, store: Store, connector: ScriptedConnector
) -> None:
    holds = [Hold() for _ in range(3)]
    connector.script.extend(holds)
    await create_batch(store, "qrb_slots", size=3, now=time.time())
    items = await claim(store, "qrb_slots", 3, time.time())
    local.executor.submit(items)
    assert local.executor.capacity() == SLOTS - 3
    assert local.executor.running() == items
    for hold in holds:
        hold.release.set()
    await local.ended(3)
    assert local.executor.capacity() == SLOTS
    assert local.executor.running() == []


async def test_cancelling_a_batch_while_its_sub_queries_run_lets_them_go_and_keeps_results(
    local: Local, store: Store, connector: ScriptedConnector
) -> None:
    await create_batch(store, "qrb_cancel", size=3, now=time.time())
    first, *rest = await claim(store, "qrb_cancel", 3, time.time())
    local.executor.submit([first])
    await local.ended(1)
    holds = [Hold(), Hold()]
    connector.script.extend(holds)
    local.executor.submit(rest)
    await within(asyncio.gather(*(hold.entered.wait() for hold in holds)))
    in_flight = await stop_batch(store, "qrb_cancel", time.time(), cancelled=True)
    await local.executor.cancel(in_flight)
    await local.ended(3)
    assert [hold.cancelled for hold in holds] == [True, True]
    queries = await queries_of(store, "qrb_cancel")
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] + [QueryStatus.STOPPED] * 2
    assert await rows_of(store, queries[0]) == [[DAY.isoformat(), 1]]
    assert [q.result for q in queries[1:]] == [None, None]


async def test_identical_sub_queries_of_a_tenant_running_together_run_once_and_share_rows(
    local: Local, store: Store, connector: ScriptedConnector
) -> None:
    hold = Hold()
    connector.script.append(hold)
    await create_batch(store, "qrb_twins", size=2, same_query=True, now=time.time())
    first, second = await claim(store, "qrb_twins", 2, time.time())
    local.executor.submit([first])
    await within(hold.entered.wait())
    local.executor.submit([second])
    hold.release.set()
    await local.ended(2)
    assert len(connector.calls) == 1
    queries = await queries_of(store, "qrb_twins")
    assert [q.status for q in queries] == [QueryStatus.SUCCESS] * 2
    assert queries[0].result is not None
    assert queries[1].result is not None
    assert queries[0].result.id == queries[1].result.id


async def test_identical_sub_queries_of_different_tenants_run_separately(
    local: Local, store: Store, connector: ScriptedConnector
) -> None:
    hold = Hold()
    connector.script.append(hold)
    await create_batch(store, "qrb_mine", account="a", size=1, same_query=True, now=time.time())
    await create_batch(store, "qrb_yours", account="b", size=1, same_query=True, now=time.time())
    mine = await claim(store, "qrb_mine", 1, time.time())
    yours = await claim(store, "qrb_yours", 1, time.time())
    local.executor.submit(mine)
    await within(hold.entered.wait())
    local.executor.submit(yours)
    await until(lambda: len(local.done) == 1, local.changed)
    assert local.done == yours
    hold.release.set()
    await local.ended(2)
    assert len(connector.calls) == 2


async def test_a_run_whose_start_cannot_be_written_ends_and_its_sub_query_runs_again_later(
    local: Local, store: Store
) -> None:
    await create_batch(store, "qrb_lost", size=1, now=time.time())
    [item] = await claim(store, "qrb_lost", 1, time.time())
    with store_outage(store):
        local.executor.submit([item])
        await local.ended(1)
    assert local.executor.capacity() == SLOTS
    [query] = await queries_of(store, "qrb_lost")
    assert (query.status, query.attempt) == (QueryStatus.QUEUED, 1)
    await requeue(store, time.time() + 10 * LEASE)
    [again] = await claim(store, "qrb_lost", 1, time.time())
    local.executor.submit([again])
    await local.ended(2)
    [query] = await queries_of(store, "qrb_lost")
    assert (query.status, query.attempt) == (QueryStatus.SUCCESS, 2)


async def test_a_run_of_a_sub_query_taken_back_meanwhile_records_nothing(
    local: Local, store: Store
) -> None:
    await create_batch(store, "qrb_taken", size=1, now=time.time())
    [old] = await claim(store, "qrb_taken", 1, time.time())
    await requeue(store, time.time() + 10 * LEASE)
    await claim(store, "qrb_taken", 1, time.time())
    local.executor.submit([old])
    await local.ended(1)
    [query] = await queries_of(store, "qrb_taken")
    assert (query.status, query.attempt, query.result) == (QueryStatus.QUEUED, 2, None)


async def test_stopping_the_executor_cancels_every_run(
    local: Local, store: Store, connector: ScriptedConnector
) -> None:
    holds = [Hold(), Hold()]
    connector.script.extend(holds)
    await create_batch(store, "qrb_stop", size=2, now=time.time())
    local.executor.submit(await claim(store, "qrb_stop", 2, time.time()))
    await within(asyncio.gather(*(hold.entered.wait() for hold in holds)))
    await within(local.executor.stop())
    assert [hold.cancelled for hold in holds] == [True, True]
    assert len(local.done) == 2
    assert local.executor.running() == []
