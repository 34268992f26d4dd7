"""The recorder: group commit of run starts and ends, and what happens when a commit fails.

Its written failure policy: when the store cannot take a group commit, it is tried again
for up to ``retry_seconds`` (none by default; a lease on workers and servers); after that
every run waiting on it gets the error and stops waiting, the recorder goes on with the next
one, and the sub-queries keep their leases, which lapse and put them back on the schedule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from fakes import (
    DAY,
    chunks_of,
    claim,
    create_batch,
    outcome,
    queries_of,
    record,
    requeue,
    store_outage,
    within,
    write_chunk,
)
from sqlalchemy import Connection, event

from querybatch.domain.status import QueryStatus
from querybatch.engine.executors.recorder import Recorder
from querybatch.errors import StoreUnavailable
from querybatch.store.store import Store

LEASE = 30.0
LAPSED = 10 * LEASE  # far enough ahead that every lease taken in a test has lapsed


@pytest.fixture
async def recorder(store: Store, stopped: list[str]) -> AsyncIterator[Recorder]:
    """A running recorder on the test's store."""
    started = Recorder(store, LEASE, stopped.extend)
    started.start()
    yield started
    await within(started.close())


@pytest.fixture
def stopped() -> list[str]:
    """The batches the recorder reported as stopped."""
    return []


@pytest.fixture
def commits(store: Store) -> Iterator[list[int]]:
    """One entry per write transaction committed."""
    seen: list[int] = []

    def count(conn: Connection) -> None:
        if conn.get_execution_options().get("qb_write"):
            seen.append(1)

    event.listen(store.db.engine, "commit", count)
    yield seen
    event.remove(store.db.engine, "commit", count)


async def test_starts_and_ends_handed_over_together_are_written_in_one_transaction(
    store: Store, recorder: Recorder, commits: list[int]
) -> None:
    await create_batch(store, "qrb_group", size=6, now=time.time())
    items = await claim(store, "qrb_group", 6, time.time())
    await record(store, items[:3], now=time.time())
    commits.clear()
    ends = [recorder.finished(outcome(i, QueryStatus.SUCCESS, time.time())) for i in items[:3]]
    starts = [recorder.started(i) for i in items[3:]]
    assert await within(asyncio.gather(*ends, *starts)) == [True] * 6
    assert len(commits) == 1
    statuses = [q.status for q in await queries_of(store, "qrb_group")]
    assert statuses == [QueryStatus.SUCCESS] * 3 + [QueryStatus.RUNNING] * 3


async def test_an_applied_outcome_stores_the_result_with_the_sub_query(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_result", size=1, now=time.time())
    [item] = await claim(store, "qrb_result", 1, time.time())
    assert await within(recorder.started(item))
    ended = outcome(item, QueryStatus.SUCCESS, time.time(), rows=3)
    assert await within(recorder.finished(ended))
    [query] = await queries_of(store, "qrb_result")
    assert query.status == QueryStatus.SUCCESS
    assert query.result is not None
    assert ended.result is not None
    assert (query.result.id, query.result.total_rows) == (ended.result.id, 3)


async def test_the_start_of_a_run_that_no_longer_owns_its_query_is_refused(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_stale", size=1, now=time.time())
    [old] = await claim(store, "qrb_stale", 1, time.time())
    await requeue(store, time.time() + LAPSED)
    [new] = await claim(store, "qrb_stale", 1, time.time())
    assert await within(recorder.started(old)) is False
    assert await within(recorder.started(new)) is True


async def test_the_outcome_of_a_run_that_lost_its_query_is_not_applied_and_its_rows_go(
    store: Store, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="querybatch")
    await create_batch(store, "qrb_stale", size=1, now=time.time())
    [old] = await claim(store, "qrb_stale", 1, time.time())
    assert await within(recorder.started(old))
    await requeue(store, time.time() + LAPSED)
    await claim(store, "qrb_stale", 1, time.time())
    late = outcome(old, QueryStatus.SUCCESS, time.time())
    assert late.result is not None
    await write_chunk(store, late.result.id, 0, [(DAY.isoformat(), 1)])
    assert await within(recorder.finished(late)) is False
    [query] = await queries_of(store, "qrb_stale")
    assert (query.status, query.attempt, query.result) == (QueryStatus.QUEUED, 2, None)
    assert await chunks_of(store, late.result.id) == []
    # The late run leaves a trace with the ids an operator looks for.
    [line] = [r for r in caplog.records if getattr(r, "event", "") == "outcomes_discarded"]
    assert (line.batch_id, line.count, line.runs) == ("qrb_stale", 1, f"{old.query_id}:1")


async def test_the_recorder_reports_a_batch_once_its_last_outcome_is_written(
    store: Store, recorder: Recorder, stopped: list[str]
) -> None:
    await create_batch(store, "qrb_ends", size=2, now=time.time())
    first, last = await claim(store, "qrb_ends", 2, time.time())
    await record(store, [first, last], now=time.time())
    assert await within(recorder.finished(outcome(first, QueryStatus.SUCCESS, time.time())))
    assert stopped == []
    assert await within(recorder.finished(outcome(last, QueryStatus.FAILURE, time.time())))
    assert stopped == ["qrb_ends"]


async def test_a_run_that_stopped_waiting_does_not_stop_the_recorder(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_gone", size=2, now=time.time())
    first, second = await claim(store, "qrb_gone", 2, time.time())
    recorder.started(first).cancel()
    assert await within(recorder.started(second))
    assert [q.status for q in await queries_of(store, "qrb_gone")] == [QueryStatus.RUNNING] * 2


async def test_closing_the_recorder_writes_what_is_pending(store: Store) -> None:
    recorder = Recorder(store, LEASE, lambda _ids: None)
    recorder.start()
    await create_batch(store, "qrb_close", size=1, now=time.time())
    [item] = await claim(store, "qrb_close", 1, time.time())
    pending = recorder.started(item)
    await within(recorder.close())
    assert pending.result() is True
    [query] = await queries_of(store, "qrb_close")
    assert query.status == QueryStatus.RUNNING


# -- when the store fails -------------------------------------------------------------------


async def test_when_a_group_commit_fails_every_run_waiting_on_it_gets_the_error(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_down", size=2, now=time.time())
    first, second = await claim(store, "qrb_down", 2, time.time())
    await record(store, [first], now=time.time())
    with store_outage(store):
        ended = recorder.finished(outcome(first, QueryStatus.SUCCESS, time.time()))
        began = recorder.started(second)
        results = await within(asyncio.gather(ended, began, return_exceptions=True))
    assert [type(r) for r in results] == [StoreUnavailable, StoreUnavailable]


async def test_a_group_commit_is_tried_again_while_the_store_is_back_within_the_retry_time(
    store: Store, stopped: list[str]
) -> None:
    # A worker's recorder retries for its lease: a short database outage costs no run its
    # work, and whatever arrives meanwhile is written after it.
    patient = Recorder(store, LEASE, stopped.extend, retry_seconds=LEASE)
    patient.start()
    try:
        await create_batch(store, "qrb_blip", size=2, now=time.time())
        first, second = await claim(store, "qrb_blip", 2, time.time())
        await record(store, [first], now=time.time())
        with store_outage(store):
            ended = patient.finished(outcome(first, QueryStatus.SUCCESS, time.time()))
            began = patient.started(second)
            await asyncio.sleep(0.6)  # a few refused attempts
            assert not ended.done() and not began.done()
        assert await within(asyncio.gather(ended, began)) == [True, True]
        statuses = [q.status for q in await queries_of(store, "qrb_blip")]
        assert statuses == [QueryStatus.SUCCESS, QueryStatus.RUNNING]
    finally:
        await within(patient.close())


async def test_a_group_commit_gets_the_error_once_the_retry_time_is_over(
    store: Store, stopped: list[str]
) -> None:
    brief = Recorder(store, LEASE, stopped.extend, retry_seconds=0.5)
    brief.start()
    try:
        await create_batch(store, "qrb_gone", size=1, now=time.time())
        [item] = await claim(store, "qrb_gone", 1, time.time())
        with store_outage(store), pytest.raises(StoreUnavailable):
            await within(brief.started(item))
    finally:
        await within(brief.close())


async def test_the_recorder_writes_again_once_the_store_is_back(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_back", size=2, now=time.time())
    first, second = await claim(store, "qrb_back", 2, time.time())
    with store_outage(store), pytest.raises(StoreUnavailable):
        await within(recorder.started(first))
    assert await within(recorder.started(second))
    statuses = [q.status for q in await queries_of(store, "qrb_back")]
    assert statuses == [QueryStatus.QUEUED, QueryStatus.RUNNING]


async def test_a_sub_query_whose_start_could_not_be_written_runs_again_once_its_lease_lapses(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_again", size=1, now=time.time())
    [item] = await claim(store, "qrb_again", 1, time.time())
    with store_outage(store), pytest.raises(StoreUnavailable):
        await within(recorder.started(item))
    [query] = await queries_of(store, "qrb_again")
    assert (query.status, query.attempt) == (QueryStatus.QUEUED, 1)
    assert await requeue(store, time.time() + LAPSED) == 1
    [again] = await claim(store, "qrb_again", 1, time.time())
    assert (again.query_id, again.attempt) == (item.query_id, 2)


async def test_a_sub_query_whose_outcome_could_not_be_written_runs_again_once_its_lease_lapses(
    store: Store, recorder: Recorder
) -> None:
    await create_batch(store, "qrb_again", size=1, now=time.time())
    [item] = await claim(store, "qrb_again", 1, time.time())
    assert await within(recorder.started(item))
    lost = outcome(item, QueryStatus.SUCCESS, time.time())
    with store_outage(store), pytest.raises(StoreUnavailable):
        await within(recorder.finished(lost))
    [query] = await queries_of(store, "qrb_again")
    assert (query.status, query.result) == (QueryStatus.RUNNING, None)
    assert await requeue(store, time.time() + LAPSED) == 1
    [query] = await queries_of(store, "qrb_again")
    assert query.status == QueryStatus.SCHEDULED
