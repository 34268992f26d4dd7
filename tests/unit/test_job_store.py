"""The job store's status changes: conditional, counted exactly, and safe against stale runs."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from querybatch.domain.batch import BatchSettings, PlannedQuery
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.store.codec import encode_spec
from querybatch.store.records import BatchRecord, ErrorInfo, NewResult, Outcome, WorkItem
from querybatch.store.results import encode_rows
from querybatch.store.runs import new_result_id
from querybatch.store.store import Store
from querybatch.store.upkeep import ExpirySlice

SPEC = {
    "ds_id": "DEMO_ADS",
    "accounts": ["ads-0001"],
    "start_date": "2026-01-01",
    "end_date": "2026-01-01",
    "fields": ["date"],
}
QUERY = QuerySpec.model_validate(SPEC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on SQLite, and on PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        url = request.getfixturevalue("pg_schema")[0]
    opened = Store.open(url, result_ttl=3600)
    yield opened
    opened.close()


def make_batch(store: Store, n: int, batch_id: str = "qrb_000000000001") -> BatchRecord:
    return store.jobs.create_batch.blocking(
        batch_id=batch_id,
        kind="batch",
        account="acme",
        key_id="key_1",
        settings=BatchSettings(),
        query_concurrency=5,
        timeout_seconds=600,
        schedule_time=time.time(),
        subqueries=[
            PlannedQuery(
                f"{batch_id}_query_{i}",
                QUERY,
                QUERY.accounts,
                QUERY.start_date,
                QUERY.end_date,
                encode_spec(SPEC),
                f"fp{i}",
            )
            for i in range(1, n + 1)
        ],
        now=time.time(),
    )


def lane_of(store: Store, batch_id: str) -> object:
    return next(lane for lane in store.runs.active_lanes.blocking() if lane.batch_id == batch_id)


def claim(store: Store, batch_id: str, n: int) -> list[WorkItem]:
    lane = lane_of(store, batch_id)
    now = time.time()
    return store.runs.claim.blocking(lane, n, now, now + 30)  # type: ignore[arg-type]


def success(item: WorkItem, rows: int = 1) -> Outcome:
    payload = encode_rows([("2026-01-01",)] * rows)
    return Outcome(
        query_id=item.query_id,
        batch_id=item.batch_id,
        attempt=item.attempt,
        status=QueryStatus.SUCCESS,
        end_time=time.time(),
        result=NewResult(new_result_id(), rows, 1, 0.01, ((0, rows, payload),)),
    )


def counts(store: Store, batch_id: str = "qrb_000000000001") -> tuple[int, ...]:
    batch = store.jobs.get_batch.blocking("acme", batch_id, time.time())
    assert batch is not None
    c = batch.counts
    return (c.queued, c.running, c.success, c.failure, c.stopped)


def test_result_ids_made_later_sort_later() -> None:
    """Result ids lead with the time they were made, so that the indexes keyed by them
    (results, result chunks, a sub-query's result) grow at their end, and the results of
    neighbouring sub-queries sit together."""
    made = []
    for _ in range(5):
        made.append(new_result_id())
        time.sleep(0.002)
    assert sorted(made) == made
    assert len(set(made)) == 5
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in made)
    same_moment = {new_result_id() for _ in range(1000)}
    assert len(same_moment) == 1000


def test_claims_take_queries_in_order_and_start_the_batch(store: Store) -> None:
    make_batch(store, 10)
    items = claim(store, "qrb_000000000001", 3)
    first_three = store.jobs.batch_queries.blocking("qrb_000000000001", 0, 3)
    assert [i.query_id for i in items] == [q.id for q in first_three]
    assert [q.position for q in first_three] == [1, 2, 3]
    assert all(i.attempt == 1 for i in items)
    batch = store.jobs.get_batch.blocking("acme", "qrb_000000000001", time.time())
    assert batch is not None and batch.status is BatchStatus.RUNNING
    assert counts(store) == (10, 0, 0, 0, 0)


def test_counters_follow_every_transition_and_the_batch_stops_when_all_ended(store: Store) -> None:
    make_batch(store, 3)
    items = claim(store, "qrb_000000000001", 3)
    began, _, _ = store.runs.record_runs.blocking(
        [(i, time.time()) for i in items], [], time.time() + 30, time.time()
    )
    assert began == [True, True, True]
    assert counts(store) == (0, 3, 0, 0, 0)
    failed = Outcome(
        items[1].query_id,
        items[1].batch_id,
        items[1].attempt,
        QueryStatus.FAILURE,
        time.time(),
        error=ErrorInfo("CONNECTOR_ERROR", "boom"),
    )
    _, ended, stopped = store.runs.record_runs.blocking(
        [], [success(items[0]), failed], time.time() + 30, time.time()
    )
    assert ended == [True, True] and stopped == []
    assert counts(store) == (0, 1, 1, 1, 0)
    _, _, stopped = store.runs.record_runs.blocking(
        [], [success(items[2])], time.time() + 30, time.time()
    )
    assert stopped == ["qrb_000000000001"]
    batch = store.jobs.get_batch.blocking("acme", "qrb_000000000001", time.time())
    assert batch is not None and batch.status is BatchStatus.STOPPED and batch.end_time


def test_an_outcome_of_a_superseded_attempt_is_ignored_and_its_rows_dropped(store: Store) -> None:
    make_batch(store, 1)
    (stale,) = claim(store, "qrb_000000000001", 1)
    store.runs.record_runs.blocking([(stale, time.time())], [], time.time() + 30, time.time())
    # The run went silent: its lease expires and the query goes back on the schedule.
    assert store.runs.requeue.blocking(time.time() + 60) == 1
    assert counts(store) == (1, 0, 0, 0, 0)
    (fresh,) = claim(store, "qrb_000000000001", 1)
    assert fresh.attempt == stale.attempt + 1
    store.runs.record_runs.blocking([(fresh, time.time())], [], time.time() + 30, time.time())
    late = success(stale, rows=3)
    _, ended, _ = store.runs.record_runs.blocking([], [late], time.time() + 30, time.time())
    assert ended == [False]
    assert store.results.read_chunks.blocking(late.result.id, 0, 10) == []  # type: ignore[union-attr]
    on_time = success(fresh, rows=2)
    _, ended, _ = store.runs.record_runs.blocking([], [on_time], time.time() + 30, time.time())
    assert ended == [True]
    query = store.jobs.get_query.blocking("acme", "qrb_000000000001_query_1", time.time())
    assert query is not None and query.result is not None
    assert query.result.total_rows == 2
    # A redelivered copy of the same attempt that finishes later records nothing: rows stay once.
    duplicate = success(fresh, rows=2)
    _, ended, _ = store.runs.record_runs.blocking([], [duplicate], time.time() + 30, time.time())
    assert ended == [False]
    assert store.results.read_chunks.blocking(duplicate.result.id, 0, 10) == []  # type: ignore[union-attr]
    assert len(store.results.read_chunks.blocking(on_time.result.id, 0, 10)) == 1  # type: ignore[union-attr]
    assert counts(store) == (0, 0, 1, 0, 0)


def test_stopping_a_batch_stops_what_had_not_finished_and_keeps_results(store: Store) -> None:
    make_batch(store, 4)
    items = claim(store, "qrb_000000000001", 2)
    store.runs.record_runs.blocking([(i, time.time()) for i in items], [], 0, time.time())
    store.runs.record_runs.blocking([], [success(items[0])], 0, time.time())
    in_flight, stopped_now = store.runs.stop_batch.blocking(
        "qrb_000000000001", time.time(), cancelled=True
    )
    assert stopped_now
    assert in_flight == [items[1].query_id]
    assert counts(store) == (0, 0, 1, 0, 3)
    batch = store.jobs.get_batch.blocking("acme", "qrb_000000000001", time.time())
    assert batch is not None and batch.cancel_time is not None
    kept = store.jobs.get_query.blocking("acme", "qrb_000000000001_query_1", time.time())
    assert kept is not None and kept.status is QueryStatus.SUCCESS
    # A run that was still going cannot record anything any more.
    _, ended, _ = store.runs.record_runs.blocking([], [success(items[1])], 0, time.time())
    assert ended == [False]
    assert store.runs.stop_batch.blocking("qrb_000000000001", time.time(), cancelled=True) == (
        [],
        False,
    )


def test_another_tenant_cannot_see_a_batch_or_its_queries(store: Store) -> None:
    make_batch(store, 1)
    assert store.jobs.get_batch.blocking("other", "qrb_000000000001", time.time()) is None
    assert store.jobs.get_query.blocking("other", "qrb_000000000001_query_1", time.time()) is None


def test_expired_batches_are_swept_with_their_rows(store: Store) -> None:
    make_batch(store, 1)
    (item,) = claim(store, "qrb_000000000001", 1)
    outcome = success(item)
    store.runs.record_runs.blocking([(item, time.time())], [], 0, time.time())
    store.runs.record_runs.blocking([], [outcome], 0, time.time())
    later = time.time() + 3601
    assert store.jobs.get_batch.blocking("acme", "qrb_000000000001", later) is None
    assert store.upkeep.expire_slice.blocking(later, 100) == ExpirySlice(1, 1, done=True)
    assert store.upkeep.expire_slice.blocking(later, 100) == ExpirySlice(0, 0, done=True)
    assert store.results.read_chunks.blocking(outcome.result.id, 0, 10) == []  # type: ignore[union-attr]


def finish_all(store: Store, batch_id: str, n: int, end: float) -> list[Outcome]:
    items = claim(store, batch_id, n)
    store.runs.record_runs.blocking([(i, end) for i in items], [], end + 30, end)
    outcomes = [dataclasses.replace(success(i), end_time=end) for i in items]
    store.runs.record_runs.blocking([], outcomes, end + 30, end)
    return outcomes


def count_rows(store: Store, table: str) -> int:
    from sqlalchemy import text

    with store.db.reading() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_expiry_deletes_a_slice_at_a_time_oldest_batch_first(store: Store) -> None:
    make_batch(store, 5, "qrb_000000000001")
    make_batch(store, 3, "qrb_000000000002")
    make_batch(store, 2, "qrb_000000000003")
    finish_all(store, "qrb_000000000001", 5, 1000.0)
    finish_all(store, "qrb_000000000002", 3, 1001.0)
    finish_all(store, "qrb_000000000003", 2, 9000.0)  # not expired yet at 5000
    now = 1002.0 + 3600 + 1
    slices = [store.upkeep.expire_slice.blocking(now, 3)]
    while not slices[-1].done:
        slices.append(store.upkeep.expire_slice.blocking(now, 3))
    assert [(d.queries, d.batches) for d in slices] == [(3, 0), (3, 1), (2, 1)]
    assert count_rows(store, "queries") == 2 and count_rows(store, "batches") == 1
    assert count_rows(store, "results") == 2 and count_rows(store, "result_chunks") == 2


def test_expiry_keeps_a_result_that_a_live_query_still_refers_to(store: Store) -> None:
    from sqlalchemy import update

    from querybatch.store.tables import queries

    make_batch(store, 1, "qrb_000000000001")
    make_batch(store, 1, "qrb_000000000002")
    (old,) = finish_all(store, "qrb_000000000001", 1, 1000.0)
    finish_all(store, "qrb_000000000002", 1, 9000.0)
    assert old.result is not None
    with store.db.writing() as conn:  # the live query was answered from the old one's rows
        conn.execute(
            update(queries)
            .where(queries.c.schedule_id == "qrb_000000000002_query_1")
            .values(result_id=old.result.id)
        )
    store.upkeep.expire_slice.blocking(1000.0 + 3601, 100)
    assert count_rows(store, "queries") == 1
    assert store.results.read_chunks.blocking(old.result.id, 0, 0) != []


def test_lost_runs_chunks_go_after_their_grace_and_recorded_ones_stay(store: Store) -> None:
    make_batch(store, 1)
    (recorded,) = finish_all(store, "qrb_000000000001", 1, 1000.0)
    for result_id, at in (("lost_old", 1000.0), ("lost_new", 5000.0)):
        store.results.write_chunk.blocking(result_id, 0, [("2026-01-01",)], at)
    deleted, after = 0, store.upkeep.orphans_checked.blocking()
    while after is not None:  # one chunk at a time, to the end
        dropped, after = store.upkeep.orphan_slice.blocking(2000.0, after, 1)
        deleted += dropped
    assert deleted == 1
    assert store.results.read_chunks.blocking("lost_old", 0, 0) == []
    assert store.results.read_chunks.blocking("lost_new", 0, 0) != []
    assert recorded.result is not None
    assert store.results.read_chunks.blocking(recorded.result.id, 0, 0) != []


def test_one_stale_outcome_among_many_leaves_the_others_recorded(store: Store) -> None:
    make_batch(store, 3)
    items = claim(store, "qrb_000000000001", 3)
    store.runs.record_runs.blocking(
        [(i, time.time()) for i in items], [], time.time() + 30, time.time()
    )
    stale = dataclasses.replace(items[1], attempt=items[1].attempt + 7)
    outcomes = [success(items[0]), success(stale), success(items[2])]
    _, ended, _ = store.runs.record_runs.blocking([], outcomes, time.time() + 30, time.time())
    assert ended == [True, False, True]
    assert counts(store) == (0, 1, 2, 0, 0)
    assert store.results.read_chunks.blocking(outcomes[1].result.id, 0, 10) == []  # type: ignore[union-attr]
    for kept in (outcomes[0], outcomes[2]):
        assert len(store.results.read_chunks.blocking(kept.result.id, 0, 10)) == 1  # type: ignore[union-attr]


def test_a_move_the_state_machine_forbids_is_refused() -> None:
    from querybatch.store.counters import Deltas

    with pytest.raises(ValueError, match="SUCCESS to RUNNING"):
        Deltas().move("qrb_000000000001", QueryStatus.SUCCESS, QueryStatus.RUNNING)


@pytest.mark.parametrize("started", [True, False])
def test_a_sub_query_claimed_max_attempts_times_is_abandoned_not_requeued(
    store: Store, started: bool
) -> None:
    make_batch(store, 1)
    for attempt in (1, 2):
        (item,) = claim(store, "qrb_000000000001", 1)
        assert item.attempt == attempt
        if started:  # a run that hangs or dies before its start is recorded counts too
            store.runs.record_runs.blocking(
                [(item, time.time())], [], time.time() + 30, time.time()
            )
        moved = store.runs.requeue.blocking(time.time(), everything=True, max_attempts=2)
        assert moved == (1 if attempt == 1 else 0)
    assert counts(store) == (0, 0, 0, 1, 0)
    query = store.jobs.get_query.blocking("acme", "qrb_000000000001_query_1", time.time())
    assert query is not None and query.status is QueryStatus.FAILURE
    assert query.error is not None
    assert (query.error.code, query.error.message) == (
        "QUERY_ABANDONED",
        "Abandoned after 2 attempts",
    )
    batch = store.jobs.get_batch.blocking("acme", "qrb_000000000001", time.time())
    assert batch is not None and batch.status is BatchStatus.STOPPED


def test_the_prepared_hot_reads_answer_exactly_as_sqlalchemy_does(store: Store) -> None:
    from querybatch.store import jobs, results

    batch_id = "qrb_000000000001"
    make_batch(store, 4)
    items = claim(store, batch_id, 3)
    store.runs.record_runs.blocking(
        [(i, time.time()) for i in items], [], time.time() + 30, time.time()
    )
    done = dataclasses.replace(success(items[0], rows=3), excluded_accounts={"ads-9": "gone"})
    failed = Outcome(
        items[1].query_id,
        batch_id,
        items[1].attempt,
        QueryStatus.FAILURE,
        time.time(),
        error=ErrorInfo("CONNECTOR_ERROR", "boom", "the source said no"),
    )
    store.runs.record_runs.blocking([], [done, failed], time.time() + 30, time.time())
    assert done.result is not None
    reads = [
        *(
            (jobs._QUERY_BY_SCHEDULE_ID, {"account": "acme", "ident": f"{batch_id}_query_{n}"})
            for n in (1, 2, 3, 4)
        ),
        (jobs._BATCH_PAGE, {"b_id": batch_id, "offset": 0, "limit": 100}),
        (jobs._BATCH_PAGE, {"b_id": batch_id, "offset": 2, "limit": 1}),
        (results._READ_CHUNKS, {"r_id": done.result.id, "first": 0, "last": 0}),
    ]
    with store.db.reading() as conn:
        for read, params in reads:
            expected = [tuple(row) for row in conn.execute(read.statement, params)]
            assert expected, read.statement  # each compares something
            assert [tuple(row) for row in read.rows(conn, params)] == expected
    # The statuses, times, error and excluded accounts survive the way through a page too.
    page = store.jobs.batch_page.blocking(batch_id, 0, 100)
    assert [q.status for q in page] == [
        QueryStatus.SUCCESS,
        QueryStatus.FAILURE,
        QueryStatus.RUNNING,
        QueryStatus.SCHEDULED,
    ]
    assert page[0].excluded_accounts == {"ads-9": "gone"} and page[0].total_rows == 3
    assert page[1].error == ErrorInfo("CONNECTOR_ERROR", "boom", "the source said no")
    assert page[3].split() == (("ads-0001",), "2026-01-01", "2026-01-01")


def test_a_driver_error_in_a_prepared_read_is_the_store_s_own_error(store: Store) -> None:
    from sqlalchemy import literal_column, select

    from querybatch.errors import StoreUnavailable
    from querybatch.store.prepared import PreparedRead
    from querybatch.store.tables import queries

    broken = PreparedRead(select(literal_column("no_such_column")).select_from(queries))
    with pytest.raises(StoreUnavailable), store.db.reading() as conn:
        broken.rows(conn, {})


async def test_a_read_run_as_a_point_read_answers_the_same_and_a_write_never_is(
    store: Store,
) -> None:
    make_batch(store, 5)
    page = store.jobs.batch_page
    assert await page.point("qrb_000000000001", 1, 3) == await page("qrb_000000000001", 1, 3)
    assert [q.schedule_id for q in await page.point("qrb_000000000001", 1, 3)] == [
        f"qrb_000000000001_query_{n}" for n in (2, 3, 4)
    ]
    with pytest.raises(TypeError, match="never a point read"):
        await store.runs.renew_leases.point([], 0.0)


async def test_a_batch_s_rows_come_in_batch_order_across_pages_and_chunks(store: Store) -> None:
    from querybatch.engine.batch_rows import batch_stored_rows, decoded_rows
    from querybatch.engine.result_rows import Columns
    from querybatch.store.results import CHUNK_ROWS

    batch = make_batch(store, 6).id
    items = claim(store, "qrb_000000000001", 6)
    now = time.time()
    store.runs.record_runs.blocking([(i, now) for i in items], [], now + 30, now)
    sizes = [3, 0, CHUNK_ROWS + 2, None, 1, 2]  # None: the sub-query fails
    outcomes = []
    for item, size in zip(items, sizes, strict=True):
        if size is None:
            outcomes.append(
                dataclasses.replace(
                    success(item), status=QueryStatus.FAILURE, result=None, error=ErrorInfo("E", "")
                )
            )
            continue
        rows = [(f"{item.query_id}-{n}",) for n in range(size)]
        chunks = tuple(
            (seq, len(part), encode_rows(part))
            for seq, part in enumerate(
                rows[start : start + CHUNK_ROWS] for start in range(0, size, CHUNK_ROWS)
            )
        )
        result = NewResult(new_result_id(), size, 1, 0.01, chunks)
        outcomes.append(dataclasses.replace(success(item), result=result))
    store.runs.record_runs.blocking([], outcomes, now + 30, now)
    expected = [
        [f"qrb_000000000001_query_{position}", None, f"{item.query_id}-{n}"]
        for position, (item, size) in enumerate(zip(items, sizes, strict=True), 1)
        for n in range(size or 0)
    ]
    # A column the sub-queries do not have comes first: every row is laid out, not copied.
    columns = Columns(["schedule_id", "other", "date"], ["schedule_id", "other", "date"], [])
    blocks = [
        b
        async for b in decoded_rows(
            batch_stored_rows(store, batch, columns, page_results=2, through=6)
        )
    ]
    assert [row for block in blocks for row in block] == expected
    assert all(blocks)
    # Pages are ranges of positions: one holding only the failed sub-query is passed over.
    one_by_one = [
        row
        async for block in decoded_rows(
            batch_stored_rows(store, batch, columns, page_results=1, through=6)
        )
        for row in block
    ]
    assert one_by_one == expected
    # A window of positions (a transfer run's queries in a shared batch) reads only those.
    window = [
        row
        async for block in decoded_rows(
            batch_stored_rows(store, batch, columns, after=2, through=5)
        )
        for row in block
    ]
    assert window == [row for row in expected if row[0].rsplit("_", 1)[1] in ("3", "4", "5")]
    assert window and len(window) < len(expected)


def test_a_batch_whose_sub_queries_cannot_all_be_stored_stores_nothing(store: Store) -> None:
    from querybatch.errors import Conflict

    make_batch(store, 2)
    twice = [
        PlannedQuery(
            "qrb_000000000002_query_1",
            QUERY,
            QUERY.accounts,
            QUERY.start_date,
            QUERY.end_date,
            encode_spec(SPEC),
            "fp",
        ),
    ] * 2  # the same schedule id twice: the driver's insert refuses the second
    with pytest.raises(Conflict):
        store.jobs.create_batch.blocking(
            batch_id="qrb_000000000002",
            kind="batch",
            account="acme",
            key_id="key_1",
            settings=BatchSettings(),
            query_concurrency=5,
            timeout_seconds=600,
            schedule_time=time.time(),
            subqueries=twice,
            now=time.time(),
        )
    assert store.jobs.get_batch.blocking("acme", "qrb_000000000002", time.time()) is None
    assert count_rows(store, "queries") == 2


def test_a_plan_that_makes_fewer_sub_queries_than_it_counted_stores_nothing(
    store: Store,
) -> None:
    class Miscounted(list[PlannedQuery]):
        def __len__(self) -> int:
            return 2

    one = Miscounted(
        [
            PlannedQuery(
                "qrb_000000000001_query_1",
                QUERY,
                QUERY.accounts,
                QUERY.start_date,
                QUERY.end_date,
                encode_spec(SPEC),
                "fp",
            )
        ]
    )
    with pytest.raises(ValueError, match="2 sub-queries planned, 1 made"):
        store.jobs.create_batch.blocking(
            batch_id="qrb_000000000001",
            kind="batch",
            account="acme",
            key_id="key_1",
            settings=BatchSettings(),
            query_concurrency=5,
            timeout_seconds=600,
            schedule_time=time.time(),
            subqueries=one,
            now=time.time(),
        )
    assert count_rows(store, "batches") == 0 and count_rows(store, "queries") == 0


def test_a_batch_s_filter_rows_are_written_once_and_match_its_specs(store: Store) -> None:
    from querybatch.domain.sub_query_filter import SubQueryFilter

    make_batch(store, 4)
    views = store.sub_queries
    assert not views.has_keys.blocking("qrb_000000000001", 4)
    views.write_keys.blocking("qrb_000000000001", 1, 2)
    assert count_rows(store, "sub_query_keys") == 2
    assert not views.has_keys.blocking("qrb_000000000001", 4)  # not all written yet
    views.write_keys.blocking("qrb_000000000001", 1, 4)  # what is there already stays
    assert views.has_keys.blocking("qrb_000000000001", 4)
    assert count_rows(store, "sub_query_keys") == 4
    kept = SubQueryFilter(account="ADS-0001", day=QUERY.start_date)
    found, total = views.filtered_page.blocking("qrb_000000000001", kept, 1, 2)
    assert total == 4 and [q.schedule_id for q in found] == [
        "qrb_000000000001_query_2",
        "qrb_000000000001_query_3",
    ]
    missed = SubQueryFilter(account="ads-0002")
    assert views.filtered_page.blocking("qrb_000000000001", missed, 0, 10) == ([], 0)
    assert views.filtered_page.blocking(
        "qrb_000000000001",
        SubQueryFilter(statuses=frozenset({QueryStatus.SUCCESS}), day=QUERY.start_date),
        0,
        10,
    ) == ([], 0)


def test_expiry_deletes_a_batch_s_filter_rows_with_its_sub_queries(store: Store) -> None:
    make_batch(store, 5, "qrb_000000000001")
    make_batch(store, 2, "qrb_000000000002")
    for batch_id in ("qrb_000000000001", "qrb_000000000002"):
        store.sub_queries.write_keys.blocking(batch_id, 1, 5)
    finish_all(store, "qrb_000000000001", 5, 1000.0)
    finish_all(store, "qrb_000000000002", 2, 9000.0)  # not expired yet
    now = 1000.0 + 3600 + 1
    assert store.upkeep.expire_slice.blocking(now, 3) == ExpirySlice(3, 0, done=False)
    assert count_rows(store, "sub_query_keys") == 4
    while not store.upkeep.expire_slice.blocking(now, 3).done:
        pass
    assert count_rows(store, "sub_query_keys") == 2  # the live batch's


def test_the_cache_answers_from_data_requests_not_from_batches(store: Store) -> None:
    result_ids = {}
    # The data request first: were a batch's sub-queries cacheable, the newer one would answer.
    for batch_id in ("qry_000000000001", "qrb_000000000002"):
        make_batch(store, 1, batch_id)
        items = claim(store, batch_id, 1)
        now = time.time()
        store.runs.record_runs.blocking([(i, now) for i in items], [], now + 30, now)
        outcome = success(items[0])
        store.runs.record_runs.blocking([], [outcome], now + 30, now + 1)
        assert outcome.result is not None
        result_ids[batch_id] = outcome.result.id
        time.sleep(0.01)
    found = store.jobs.find_cached.blocking("acme", "fp1", 0.0, time.time())
    assert found is not None and found[0] == result_ids["qry_000000000001"]
