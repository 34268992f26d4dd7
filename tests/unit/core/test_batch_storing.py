"""A large batch's sub-queries stored behind its answer: from its plan, the same ones in the
same order, a slice at a time, taken over after a crash, and stopped with the batch."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

import pytest
from fakes import FakeClock
from sqlalchemy import text

from querybatch.domain.batch import BatchSettings
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import BatchStatus
from querybatch.engine.batch_storing import LOOK_SECONDS, WAIT_MOST_SECONDS, BatchStoring
from querybatch.engine.batches import SubQueries
from querybatch.store.records import BatchRecord
from querybatch.store.store import Store

SETTINGS = BatchSettings(split_accounts_policy="all", split_dates_policy="day")
FIRST = 100  # sub-queries stored with the batch


def specs() -> list[QuerySpec]:
    """Three queries of different shapes: 2 accounts x 90 days, 1 x 31, 3 x 40 (331 pieces)."""
    shapes = [
        (["ads-0001", "ads-0002"], date(2026, 1, 1), date(2026, 3, 31), ["date", "clicks"]),
        (["ads-0003"], date(2025, 12, 1), date(2025, 12, 31), ["date"]),
        (["ads-0004", "ads-0005", "ads-0006"], date(2026, 2, 1), date(2026, 3, 12), ["date"]),
    ]
    return [
        QuerySpec(ds_id="DEMO_ADS", accounts=tuple(a), start_date=s, end_date=e, fields=tuple(f))
        for a, s, e, f in shapes
    ]


def sub_queries(batch_id: str, *, interleaved: bool = False) -> SubQueries:
    made = SubQueries(batch_id, specs(), SETTINGS, 0, interleaved=interleaved)
    made.total = sum(1 for _ in made.after(0))
    return made


def stored_rows(store: Store, batch_id: str) -> list[tuple[Any, ...]]:
    """What the store holds of each sub-query, the batch's id left out of its schedule id."""
    rows = store.jobs.batch_queries.blocking(batch_id, 0, 100_000)
    return [
        (
            q.position,
            q.schedule_id.removeprefix(batch_id),
            q.status.value,
            q.spec,
            q.fingerprint,
        )
        for q in rows
    ]


def create(store: Store, batch_id: str, subqueries: SubQueries, *, behind: bool) -> BatchRecord:
    return store.jobs.create_batch.blocking(
        batch_id=batch_id,
        kind="batch",
        account="acme",
        key_id="key_1",
        settings=SETTINGS,
        query_concurrency=5,
        timeout_seconds=600,
        schedule_time=time.time() + 86400,
        subqueries=subqueries,
        now=time.time(),
        plan=subqueries.plan() if behind else None,
        stored_now=FIRST if behind else None,
    )


async def until_stored(store: Store, batch_id: str) -> None:
    for _ in range(400):
        if await store.jobs.stored_through("acme", batch_id) is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch's sub-queries were not all stored")


@pytest.mark.parametrize("interleaved", [False, True])
def test_a_plan_makes_the_same_sub_queries_in_the_same_order_from_any_position(
    interleaved: bool,
) -> None:
    made = sub_queries("qrb_00000000000a", interleaved=interleaved)
    every = list(made)
    assert len(every) == made.total == 2 * 90 + 31 + 3 * 40
    again = SubQueries.from_plan("qrb_00000000000a", made.plan(), SETTINGS, made.total)
    for start in (0, 1, 99, 180, made.total - 1, made.total):
        assert list(again.after(start)) == every[start:]
    assert [p.schedule_id for p in every[:2]] == [
        "qrb_00000000000a_query_1",
        "qrb_00000000000a_query_2",
    ]


async def test_the_rest_stored_behind_is_what_storing_the_whole_batch_stores(
    store: Store,
) -> None:
    whole, behind = "qrb_0000000000a1", "qrb_0000000000a2"
    create(store, whole, sub_queries(whole), behind=False)
    subqueries = sub_queries(behind)
    batch = create(store, behind, subqueries, behind=True)
    assert batch.stored == FIRST
    assert len(stored_rows(store, behind)) == FIRST

    storing = BatchStoring(store, 40, lambda: None, alone=True)
    storing.hand_over(behind, subqueries, FIRST)
    await until_stored(store, behind)
    assert stored_rows(store, behind) == stored_rows(store, whole)
    every = store.jobs.batch_queries.blocking(behind, 0, 100_000)
    assert {q.created_at for q in every} == {batch.created_at}
    assert store.jobs.stored_in_part.blocking() == []
    await storing.stop()


async def test_a_node_alone_takes_over_at_once_the_storing_a_crash_left_unfinished(
    store: Store,
) -> None:
    subqueries = sub_queries("qrb_0000000000b1")
    create(store, "qrb_0000000000b1", subqueries, behind=True)  # and then the process died
    (partly,) = store.jobs.stored_in_part.blocking()
    assert (partly.stored, partly.query_amount) == (FIRST, subqueries.total)

    storing = BatchStoring(store, 64, lambda: None, alone=True)
    storing.look()
    await until_stored(store, "qrb_0000000000b1")
    assert [row[0] for row in stored_rows(store, "qrb_0000000000b1")] == list(
        range(1, subqueries.total + 1)
    )
    await storing.stop()


async def test_scaled_out_the_leader_takes_over_only_a_batch_whose_storing_stopped(
    store: Store, clock: FakeClock
) -> None:
    create(store, "qrb_0000000000c1", sub_queries("qrb_0000000000c1"), behind=True)
    storing = BatchStoring(store, 50, lambda: None, alone=False, clock=clock)
    storing.look()  # the first look sees it: another node may be storing it
    await asyncio.sleep(0.05)
    assert await store.jobs.stored_through("acme", "qrb_0000000000c1") == FIRST

    # Another node stores a slice meanwhile: its storing goes on, so the leader lets it be.
    again = sub_queries("qrb_0000000000c1")
    stored = store.jobs.store_more.blocking("qrb_0000000000c1", FIRST, again.after(FIRST), 10)
    assert stored == FIRST + 10
    clock.advance(LOOK_SECONDS)
    storing.look()
    await asyncio.sleep(0.05)
    assert await store.jobs.stored_through("acme", "qrb_0000000000c1") == FIRST + 10

    clock.advance(LOOK_SECONDS)  # nothing moved since the last look: that node is gone
    storing.look()
    await until_stored(store, "qrb_0000000000c1")
    await storing.stop()


async def test_a_slice_is_stored_once_whoever_writes_it(store: Store) -> None:
    subqueries = sub_queries("qrb_0000000000d1")
    create(store, "qrb_0000000000d1", subqueries, behind=True)
    # A writer that believes fewer are stored than are: nothing is written.
    stale = store.jobs.store_more.blocking(
        "qrb_0000000000d1", FIRST - 10, subqueries.after(FIRST - 10), 50
    )
    assert stale is None
    assert len(stored_rows(store, "qrb_0000000000d1")) == FIRST
    assert store.jobs.store_more.blocking("qrb_unknown00000", 0, iter([]), 50) is None


async def test_a_batch_stopped_while_stored_in_part_counts_and_stores_the_rest_stopped(
    store: Store,
) -> None:
    subqueries = sub_queries("qrb_0000000000e1")
    create(store, "qrb_0000000000e1", subqueries, behind=True)
    now = time.time()
    in_flight, stopped = store.runs.stop_batch.blocking("qrb_0000000000e1", now, cancelled=True)
    assert (in_flight, stopped) == ([], True)
    batch = store.jobs.get_batch.blocking("acme", "qrb_0000000000e1", now)
    assert batch is not None and batch.status is BatchStatus.STOPPED
    assert batch.counts.stopped == subqueries.total and batch.counts.queued == 0

    # Not expired while its rows are still being stored, however old it is.
    assert store.upkeep.expire_slice.blocking(now + 10 * 86400, 1000).queries == 0

    storing = BatchStoring(store, 70, lambda: None, alone=True)
    storing.hand_over("qrb_0000000000e1", subqueries, FIRST)
    await until_stored(store, "qrb_0000000000e1")
    rows = store.jobs.batch_queries.blocking("qrb_0000000000e1", 0, 100_000)
    assert len(rows) == subqueries.total
    assert {(q.status.value, q.error.code if q.error else None) for q in rows} == {
        ("STOPPED", "QUERY_STOPPED")
    }
    assert {q.error.message for q in rows if q.error} == {"Cancelled"}
    after = store.jobs.get_batch.blocking("acme", "qrb_0000000000e1", now)
    assert after is not None and after.counts == batch.counts
    await storing.stop()


async def test_a_reader_waits_for_a_sub_query_not_stored_yet_and_no_longer(
    store: Store,
) -> None:
    subqueries = sub_queries("qrb_0000000000f1")
    create(store, "qrb_0000000000f1", subqueries, behind=True)
    storing = BatchStoring(store, 30, lambda: None, alone=True)

    async def store_later() -> None:
        await asyncio.sleep(0.2)
        storing.hand_over("qrb_0000000000f1", subqueries, FIRST)

    later = asyncio.create_task(store_later())
    assert await storing.wait_stored("acme", "qrb_0000000000f1", subqueries.total)
    assert await store.jobs.stored_through("acme", "qrb_0000000000f1") is None
    # Another tenant's batch, or none: no wait at all.
    started = time.monotonic()
    assert not await storing.wait_stored("other", "qrb_0000000000f1", 10**6)
    assert not await storing.wait_stored("acme", "qrb_unknown00000", 10**6)
    assert time.monotonic() - started < 0.5
    await later
    await storing.stop()


async def test_a_reader_gives_up_waiting_for_a_storing_that_stopped(
    store: Store, clock: FakeClock
) -> None:
    subqueries = sub_queries("qrb_0000000000f2")
    create(store, "qrb_0000000000f2", subqueries, behind=True)
    storing = BatchStoring(store, 30, lambda: None, alone=True, clock=clock)  # nothing stores
    # A position the batch will never hold (a made-up schedule id) is not waited for.
    beyond = storing.wait_stored("acme", "qrb_0000000000f2", subqueries.total + 1)
    assert not await asyncio.wait_for(beyond, 5)

    async def time_passes() -> None:
        await asyncio.sleep(0.2)
        clock.advance(WAIT_MOST_SECONDS)

    passing = asyncio.create_task(time_passes())
    assert await asyncio.wait_for(storing.wait_stored("acme", "qrb_0000000000f2", FIRST + 1), 5)
    assert await store.jobs.stored_through("acme", "qrb_0000000000f2") == FIRST
    await passing


async def until_logged(caplog: pytest.LogCaptureFixture, line: str) -> None:
    """Return once ``line`` is logged (fail after a second)."""
    for _ in range(100):
        if line in caplog.text:
            return
        await asyncio.sleep(0.01)
    assert line in caplog.text


async def test_a_slice_that_fails_is_stored_again_from_the_plan_at_the_next_look(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    create(store, "qrb_0000000000g0", sub_queries("qrb_0000000000g0"), behind=False)
    subqueries = sub_queries("qrb_0000000000g1")
    create(store, "qrb_0000000000g1", subqueries, behind=True)
    storing = BatchStoring(store, 40, lambda: None, alone=True, clock=clock)
    # Handed the wrong batch's pieces: their schedule ids are taken, so the write fails.
    storing.hand_over("qrb_0000000000g1", sub_queries("qrb_0000000000g0"), FIRST)
    await until_logged(caplog, "storing the sub-queries of batch qrb_0000000000g1 failed")
    assert await store.jobs.stored_through("acme", "qrb_0000000000g1") == FIRST

    storing.look()  # the next look takes it over from its plan
    await until_stored(store, "qrb_0000000000g1")
    whole = sub_queries("qrb_0000000000g1")
    stored = store.jobs.batch_queries.blocking("qrb_0000000000g1", 0, 100_000)
    assert [(q.schedule_id, q.fingerprint) for q in stored] == [
        (p.schedule_id, p.fingerprint) for p in whole
    ]
    await storing.stop()


async def test_a_plan_that_cannot_be_read_leaves_the_batch_as_it_is(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    create(store, "qrb_0000000000h1", sub_queries("qrb_0000000000h1"), behind=True)
    with store.db.writing() as conn:
        conn.execute(
            text("UPDATE batches SET plan = '{\"specs\": 7}' WHERE id = 'qrb_0000000000h1'")
        )
    storing = BatchStoring(store, 40, lambda: None, alone=True)
    storing.look()
    await until_logged(caplog, "the plan of batch qrb_0000000000h1 cannot be read")
    assert await store.jobs.stored_through("acme", "qrb_0000000000h1") == FIRST
    await storing.stop()
