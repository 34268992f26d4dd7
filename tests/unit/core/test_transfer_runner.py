"""The transfer runner against a real engine, store and DuckDB file, with a clock the test
moves: due transfers make their runs once, each run's batch is loaded, and a destination
that is down fails only its own runs. Passes are driven by hand; nothing waits for hours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import WAIT, FakeClock, within
from sqlalchemy import select

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.demo import DemoConnector
from querybatch.connectors.sources import build_sources
from querybatch.destinations import registry
from querybatch.destinations.base import RowChunk
from querybatch.domain.fields import Row
from querybatch.domain.teams import team_id_of
from querybatch.engine import transfer_loads, transfer_runner
from querybatch.engine.backfills import Backfills, BackfillState
from querybatch.engine.catalog import Catalog
from querybatch.engine.destination_targets import DestinationTargets
from querybatch.engine.destinations import DestinationInput, Destinations
from querybatch.engine.factory import build_executor
from querybatch.engine.query_batches import QueryBatches
from querybatch.engine.secret_box import SecretBox
from querybatch.engine.service import Caller, Engine
from querybatch.engine.transfer_loads import StoppedRun, TransferLoads
from querybatch.engine.transfer_runner import TransferRunner
from querybatch.engine.transfer_runs import TransferRuns
from querybatch.engine.transfers import TransferAccountInput, TransferInput, Transfers
from querybatch.errors import (
    BadRequest,
    Conflict,
    ConnectorError,
    DestinationUnreachable,
    NotFound,
)
from querybatch.settings import Settings
from querybatch.store.store import Store
from querybatch.store.tables import batches
from querybatch.store.transfer_runs import RunsQuery, TransferRunRecord

ACME = Caller("acme", "key_1")
TEAM = team_id_of("acme")
START = datetime(2026, 11, 20, 10, 30, tzinfo=UTC).timestamp()
ACCOUNTS = ("ads-0001", "ads-0002")


@dataclass
class Rig:
    """A started engine and the services a transfer run goes through."""

    store: Store
    engine: Engine
    transfers: Transfers
    destinations: Destinations
    runner: TransferRunner
    clock: FakeClock
    root: Path


@pytest.fixture
async def rig(tmp_path: Path, store: Store) -> AsyncIterator[Rig]:
    settings = Settings(
        data_dir=tmp_path,
        database_url="sqlite:///" + str(tmp_path / "qb.db"),
        executor="local",
        workers=8,
        # A backfill's batches hold BACKFILL_BATCH times this many sub-queries.
        account_concurrency=4,
        retries=0,
        retry_backoff=0,
    )
    sources = build_sources(settings)
    await sources.open()
    engine = Engine(settings, store, sources, build_executor(settings, store, sources))
    await engine.start()
    clock = FakeClock(START)
    root = tmp_path / "destinations"
    destinations = Destinations(
        store,
        registry.destination_types(),
        SecretBox(b"s"),
        root,
        targets=DestinationTargets(allow_internal=True),
    )
    transfers = Transfers(store, Catalog(sources), destinations, clock=clock)
    runner = TransferRunner(store, QueryBatches(engine), transfers, destinations, clock=clock)
    yield Rig(store, engine, transfers, destinations, runner, clock, root)
    await within(runner.stop())
    await within(engine.stop())
    await sources.close()


async def make_transfer(rig: Rig, destination: DestinationInput, refresh_window: int = 2) -> int:
    dest = await rig.destinations.create(ACME, TEAM, destination)
    given = TransferInput(
        data_source_id="DEMO_ADS",
        schema_id=1,
        destination_id=dest.id,
        display_name="Ads daily",
        schedule=[{"run_interval": "daily", "run_hour": 4, "refresh_window": refresh_window}],
        accounts=[TransferAccountInput(a) for a in ACCOUNTS],
    )
    return (await rig.transfers.create(ACME, TEAM, given)).id


async def runs_of(rig: Rig, transfer_id: int) -> list[TransferRunRecord]:
    query = RunsQuery(date(2000, 1, 1), date(2100, 1, 1), sort_field="data_date", descending=False)
    return await rig.store.transfer_runs.list_for("acme", transfer_id, query)


async def run_to_the_end(rig: Rig, transfer_id: int) -> list[TransferRunRecord]:
    """Passes until no run of the transfer is CREATED, RUNNING or LOADING any more."""

    async def ended() -> list[TransferRunRecord]:
        while True:
            await rig.runner.run_pass()
            await rig.runner.settle()
            runs = await runs_of(rig, transfer_id)
            if all(r.status in ("COMPLETED", "FAILED", "CANCELLED") for r in runs):
                return runs
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(ended(), WAIT)


def duckdb_rows(path: Path) -> list[tuple[Any, ...]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(
            "SELECT CAST(_qb_data_date AS VARCHAR), _qb_account, campaign_id, clicks"
            " FROM main.demo_ads ORDER BY 1, 2, 3"
        ).fetchall()


async def test_a_new_transfer_runs_its_refresh_window_at_once_and_loads_each_date(
    rig: Rig,
) -> None:
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "a.db"}))
    runs = await run_to_the_end(rig, transfer_id)
    assert [(r.data_date.isoformat(), r.run_type, r.status) for r in runs] == [
        ("2026-11-18", "Recurring", "COMPLETED"),
        ("2026-11-19", "Recurring", "COMPLETED"),
    ]
    loaded = duckdb_rows(rig.root / str(TEAM) / "a.db")
    assert sum(r.rows_loaded or 0 for r in runs) == len(loaded) > 0
    assert {row[1] for row in loaded} == set(ACCOUNTS)
    assert {row[0] for row in loaded} == {"2026-11-18", "2026-11-19"}

    # Nothing more is due until the next 04:00 UTC, however many passes run.
    await rig.runner.run_pass()
    assert len(await runs_of(rig, transfer_id)) == 2
    transfer = await rig.store.transfers.get("acme", transfer_id)
    assert transfer is not None
    assert transfer.next_run_at == datetime(2026, 11, 21, 4, tzinfo=UTC).timestamp()

    # At 04:00 the window moves on a day: one new date, one reloaded, each row still once.
    rig.clock.now = datetime(2026, 11, 21, 4, 0, 1, tzinfo=UTC).timestamp()
    runs = await run_to_the_end(rig, transfer_id)
    assert [r.data_date.isoformat() for r in runs] == [
        "2026-11-18",
        "2026-11-19",
        "2026-11-19",
        "2026-11-20",
    ]
    assert all(r.status == "COMPLETED" for r in runs)
    again = duckdb_rows(rig.root / str(TEAM) / "a.db")
    assert len(again) == len(set(again))
    assert [r for r in again if r[0] == "2026-11-19"] == [r for r in loaded if r[0] == "2026-11-19"]


async def test_a_destination_that_is_down_fails_its_runs_and_never_blocks_another_transfer(
    rig: Rig,
) -> None:
    down = DestinationInput(
        "DWH_POSTGRESQL",
        "down",
        {"host": "127.0.0.1", "port": 9, "database_name": "dw", "username": "u", "password": "pw"},
    )
    failing = await make_transfer(rig, down, refresh_window=1)
    working = await make_transfer(
        rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "b.db"}), refresh_window=1
    )
    (failed,) = await run_to_the_end(rig, failing)
    (completed,) = await run_to_the_end(rig, working)
    assert failed.status == "FAILED" and failed.error_message
    assert "pw" not in failed.error_message
    assert completed.status == "COMPLETED" and completed.rows_loaded


async def test_two_nodes_seeing_the_same_due_transfer_make_its_runs_once(rig: Rig) -> None:
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "c.db"}))
    ((_, _, due_at),) = await rig.store.transfer_runs.due_transfers(START, 10)
    days = [date(2026, 11, 19)]
    first = await rig.store.transfer_runs.create_due(transfer_id, due_at, START + 60, days, START)
    second = await rig.store.transfer_runs.create_due(transfer_id, due_at, START + 60, days, START)
    assert len(first) == 1 and second == []
    assert await rig.store.transfer_runs.due_transfers(START, 10) == []


async def test_a_backfill_runs_each_date_a_few_at_a_time_after_the_recurring_runs(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of one tenant's limit (4 sub-queries: two runs of 2 accounts), BACKFILL_DEPTH
    # of them under way.
    monkeypatch.setattr(transfer_runner, "BACKFILL_BATCH", 1)
    under_way = 2 * transfer_runner.BACKFILL_DEPTH
    backfills = Backfills(rig.store, clock=rig.clock)
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "d.db"}))
    made = await backfills.create(ACME, TEAM, transfer_id, date(2026, 10, 1), date(2026, 10, 9))
    assert (made.status, made.total) == ("CREATED", 9) and under_way < 9
    await rig.runner.run_pass()
    runs = await runs_of(rig, transfer_id)
    started = [r for r in runs if r.status != "CREATED"]
    assert sorted(r.run_type for r in started) == ["Backfill"] * under_way + ["Recurring"] * 2
    runs = await run_to_the_end(rig, transfer_id)
    assert len(runs) == 11 and {r.status for r in runs} == {"COMPLETED"}
    done = await backfills.get(ACME, TEAM, made.id)
    assert (done.status, done.counts, done.errors) == ("COMPLETED", {"COMPLETED": 9}, ())
    assert done.started_at is not None and done.ended_at is not None
    assert await backfills.incomplete(ACME, TEAM) == []
    loaded = duckdb_rows(rig.root / str(TEAM) / "d.db")
    assert {row[0] for row in loaded} >= {f"2026-10-0{n}" for n in range(1, 10)}
    # A backfill over dates already loaded replaces them: each row is still there once.
    again = await backfills.create(ACME, TEAM, transfer_id, date(2026, 10, 5), date(2026, 10, 6))
    await run_to_the_end(rig, transfer_id)
    assert (await backfills.latest(ACME, TEAM, transfer_id)).id == again.id
    assert sorted(duckdb_rows(rig.root / str(TEAM) / "d.db")) == sorted(loaded)


async def test_a_cancelled_backfill_starts_nothing_more_and_keeps_what_it_loaded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer_runner, "BACKFILL_BATCH", 1)  # two runs to a batch
    under_way = 2 * transfer_runner.BACKFILL_DEPTH
    backfills = Backfills(rig.store, clock=rig.clock)
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "e.db"}))
    await run_to_the_end(rig, transfer_id)  # the first recurring runs
    made = await backfills.create(ACME, TEAM, transfer_id, date(2026, 9, 1), date(2026, 9, 10))
    with pytest.raises(Conflict):
        await backfills.create(ACME, TEAM, transfer_id, date(2026, 8, 1), date(2026, 8, 2))
    await rig.runner.run_pass()
    cancelled = await backfills.cancel(ACME, TEAM, made.id)
    assert cancelled.status == "CANCELLED" and cancelled.counts["CANCELLED"] == 10 - under_way
    assert await backfills.incomplete(ACME, TEAM) == []
    runs = [r for r in await run_to_the_end(rig, transfer_id) if r.backfill_id == made.id]
    assert (
        sorted(r.status for r in runs)
        == ["CANCELLED"] * (10 - under_way) + ["COMPLETED"] * under_way
    )
    loaded = {row[0] for row in duckdb_rows(rig.root / str(TEAM) / "e.db")}
    assert {r.data_date.isoformat() for r in runs if r.status == "COMPLETED"} <= loaded
    # Ended, it may be followed by another; a cancel of an ended backfill changes nothing.
    await backfills.create(ACME, TEAM, transfer_id, date(2026, 8, 1), date(2026, 8, 1))
    assert (await backfills.cancel(ACME, TEAM, made.id)).status == "CANCELLED"


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (date(2026, 11, 2), date(2026, 11, 1)),  # backwards
        (date(2026, 11, 19), date(2026, 11, 20)),  # today (UTC) has not ended
        (date(2016, 11, 1), date(2026, 11, 10)),  # 3,662 days: more than 3,660
    ],
)
async def test_a_backfill_of_a_bad_range_is_refused_and_makes_nothing(
    rig: Rig, first: date, last: date
) -> None:
    backfills = Backfills(rig.store, clock=rig.clock)
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "f.db"}))
    with pytest.raises(BadRequest):
        await backfills.create(ACME, TEAM, transfer_id, first, last)
    with pytest.raises(NotFound):
        await backfills.create(ACME, TEAM, transfer_id + 1, date(2026, 1, 1), date(2026, 1, 1))
    with pytest.raises(NotFound):
        await backfills.latest(ACME, TEAM, transfer_id)
    assert await backfills.incomplete(ACME, TEAM) == []


async def test_a_run_whose_batch_stopped_is_loaded_whatever_runs_before_it_still_wait(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading looks at runs whose batches have stopped, not at the oldest RUNNING ones:
    with a pass that looks at one run, the older run's batch still running does not keep
    the newer one, whose batch is done, from loading."""
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "h.db"}))
    await rig.runner.run_pass()
    monkeypatch.setattr("querybatch.engine.transfer_runner.PASS_LIMIT", 1)
    older, newer = sorted(await runs_of(rig, transfer_id), key=lambda r: r.id)
    assert older.batch_id and newer.batch_id

    async def stopped(batch_id: str) -> None:
        while True:
            batch = await rig.store.jobs.get_batch("acme", batch_id, rig.clock())
            if batch is not None and batch.status == "STOPPED":
                return
            await asyncio.sleep(0.02)

    for run in (older, newer):
        await within(stopped(str(run.batch_id)))
    await rig.runner.settle()  # a load the first pass began ends before the scene is set
    with rig.store.db.writing() as conn:  # the older run's batch is made to look busy again
        conn.exec_driver_sql(
            "UPDATE transfer_runs SET status = 'RUNNING' WHERE id IN (?, ?)", (older.id, newer.id)
        )
        conn.exec_driver_sql(
            "UPDATE batches SET status = 'RUNNING' WHERE id = ?", (older.batch_id,)
        )
        conn.commit()
    assert [r.id for r in await rig.store.transfer_runs.to_load(1)] == [newer.id]
    await rig.runner.run_pass()
    await rig.runner.settle()
    statuses = {r.id: r.status for r in await runs_of(rig, transfer_id)}
    assert statuses == {older.id: "RUNNING", newer.id: "COMPLETED"}


async def stopped_runs(rig: Rig, transfer_id: int, count: int) -> list[TransferRunRecord]:
    """Start ``count`` runs of the transfer with one pass, and return them once every one's
    batch has stopped (nothing loads them meanwhile: passes are driven by hand)."""
    await rig.runner.run_pass()
    started = [r for r in await runs_of(rig, transfer_id) if r.status == "RUNNING"]
    assert len(started) == count

    async def all_stopped() -> None:
        for run in started:
            while True:
                batch = await rig.store.jobs.get_batch("acme", str(run.batch_id), rig.clock())
                if batch is not None and batch.status == "STOPPED":
                    break
                await asyncio.sleep(0.02)

    await within(all_stopped())
    return started


async def four_days_backfilled(rig: Rig, file: str) -> tuple[int, BackfillState]:
    """A daily transfer into the DuckDB ``file`` and a backfill of its 1 to 4 October 2026."""
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": file}))
    backfills = Backfills(rig.store, clock=rig.clock)
    made = await backfills.create(ACME, TEAM, transfer_id, date(2026, 10, 1), date(2026, 10, 4))
    return transfer_id, made


def loads_made(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of slices of each load the runner asks of its destinations, in order."""
    made: list[int] = []
    load = rig.destinations.load

    async def counted(*args: Any) -> Any:
        made.append(len(args[-1]))
        return await load(*args)

    monkeypatch.setattr(rig.destinations, "load", counted)
    return made


async def test_runs_of_a_transfer_that_stopped_together_are_loaded_in_one_load_each_with_its_rows(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, _ = await four_days_backfilled(rig, "g.db")
    started = await stopped_runs(rig, transfer_id, 6)  # 2 recurring and 4 backfill runs
    made = loads_made(rig, monkeypatch)
    await rig.runner.run_pass()
    await rig.runner.settle()
    assert made == [6]
    runs = await runs_of(rig, transfer_id)
    assert {r.id for r in runs} == {r.id for r in started}
    assert {r.status for r in runs} == {"COMPLETED"}
    loaded = duckdb_rows(rig.root / str(TEAM) / "g.db")
    per_date = {r.data_date.isoformat(): r.rows_loaded for r in runs}
    # Each run its own date's rows, not the group's: the load's one answer holds one count
    # per slice.
    assert per_date == {day: sum(row[0] == day for row in loaded) for day in per_date}
    assert sum(per_date.values()) == len(loaded) > len(per_date)


async def test_runs_that_follow_each_other_in_a_batch_are_read_together_each_its_own_rows(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, _ = await four_days_backfilled(rig, "s.db")
    started = await stopped_runs(rig, transfer_id, 6)
    group = []
    for run in sorted((r for r in started if r.backfill_id), key=lambda r: r.query_offset):
        batch = await rig.store.jobs.get_batch("acme", str(run.batch_id), rig.clock())
        assert batch is not None
        group.append(StoppedRun(run, batch))
    loads = rig.runner.loads

    async def read(chunks: AsyncIterator[RowChunk]) -> list[tuple[str, Row]]:
        return [(chunk.account, row) async for chunk in chunks for row in chunk.rows]

    alone = [await read(loads._chunks([stopped], list(ACCOUNTS))[0]) for stopped in group]
    assert len({tuple(rows) for rows in alone}) == len(group)
    assert all(len(rows) > 2 * len(ACCOUNTS) for rows in alone)  # more than a chunk each
    monkeypatch.setattr(transfer_loads, "BLOCK_ROWS", 2)
    together = loads._chunks(group, list(ACCOUNTS))
    sizes = []

    async def sized(chunks: AsyncIterator[RowChunk]) -> AsyncIterator[RowChunk]:
        async for chunk in chunks:
            sizes.append(len(chunk.rows))
            yield chunk

    # The second run's rows are never read (its load stopped short): the third skips them.
    assert await read(sized(together[0])) == alone[0]
    assert await read(sized(together[2])) == alone[2]
    assert await read(sized(together[3])) == alone[3]
    assert max(sizes) == 2


async def test_a_run_whose_rows_the_destination_refuses_fails_alone_and_its_group_loads(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, _ = await four_days_backfilled(rig, "i.db")
    started = await stopped_runs(rig, transfer_id, 6)
    bad = started[2]
    chunks = TransferLoads._chunks

    async def foreign() -> AsyncIterator[RowChunk]:
        yield RowChunk("ads-9999", [("x",)])  # rows of an account the slice does not name

    def refused(
        loads: TransferLoads, group: list[StoppedRun], accounts: list[str]
    ) -> list[AsyncIterator[RowChunk]]:
        # The runs after it, read with it, skip the rows it left unread.
        made = chunks(loads, group, accounts)
        return [foreign() if s.run.id == bad.id else c for s, c in zip(group, made, strict=True)]

    monkeypatch.setattr(TransferLoads, "_chunks", refused)
    made = loads_made(rig, monkeypatch)
    await rig.runner.run_pass()
    await rig.runner.settle()
    assert made == [6, 1, 1, 1, 1, 1, 1]  # the group, then each run on its own
    statuses = {r.id: (r.status, r.error_message) for r in await runs_of(rig, transfer_id)}
    failed = statuses.pop(bad.id)
    assert failed[0] == "FAILED" and "does not name" in str(failed[1])
    assert {status for status, _ in statuses.values()} == {"COMPLETED"}
    loaded = {row[0] for row in duckdb_rows(rig.root / str(TEAM) / "i.db")}
    assert bad.data_date.isoformat() not in loaded
    assert {r.data_date.isoformat() for r in started if r.id != bad.id} <= loaded


async def test_a_group_whose_destination_cannot_be_reached_fails_every_run_in_one_try(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    transfer_id, _ = await four_days_backfilled(rig, "u.db")
    started = await stopped_runs(rig, transfer_id, 6)
    tries: list[int] = []

    async def unreachable(*args: Any) -> Any:
        tries.append(len(args[-1]))
        raise DestinationUnreachable("Could not open the DuckDB file 'u.db'", "locked")

    monkeypatch.setattr(rig.destinations, "load", unreachable)
    await rig.runner.run_pass()
    await rig.runner.settle()
    assert tries == [6]  # not again run by run: each would wait for the same refusal
    runs = await runs_of(rig, transfer_id)
    assert {r.id for r in runs} == {r.id for r in started}
    assert {(r.status, r.error_message) for r in runs} == {
        ("FAILED", "Could not open the DuckDB file 'u.db': locked")
    }


def sequence_of(rig: Rig, batch_id: str | None) -> str | None:
    """The sequence a batch was stored in, stopped or not (the scheduler's lanes show only
    the batches still running)."""
    with rig.store.db.reading() as conn:
        stored = conn.execute(select(batches.c.settings).where(batches.c.id == batch_id))
        sequence: str | None = stored.scalar_one().sequence
    return sequence


async def test_the_runs_of_a_backfill_share_query_batches_each_run_with_its_own_queries(
    rig: Rig,
) -> None:
    transfer_id, _ = await four_days_backfilled(rig, "j.db")
    await rig.runner.run_pass()
    runs = await runs_of(rig, transfer_id)
    filling = [r for r in runs if r.backfill_id is not None]
    recurring = [r for r in runs if r.backfill_id is None]
    # Up to BACKFILL_BATCH tenant's limits (4) of sub-queries to a batch: the four runs of
    # two accounts in one, numbered day by day.
    assert [(r.data_date.day, r.query_offset, r.query_count) for r in filling] == [
        (1, 0, 2),
        (2, 2, 2),
        (3, 4, 2),
        (4, 6, 2),
    ]
    assert len({r.batch_id for r in filling}) == 1
    shared = await rig.store.jobs.get_batch("acme", str(filling[0].batch_id), rig.clock())
    assert shared is not None and shared.query_amount == 8
    page = await rig.store.jobs.batch_page(shared.id, 0, 8)
    assert [q.split() for q in page] == [
        ((account,), f"2026-10-0{day}", f"2026-10-0{day}")
        for day in range(1, 5)
        for account in ACCOUNTS
    ]
    # Recurring runs keep a batch each, none of them a backfill's.
    assert len({r.batch_id for r in recurring}) == 2
    assert not {r.batch_id for r in recurring} & {r.batch_id for r in filling}
    # A backfill's batches run in its sequence (one after the other); recurring ones alone.
    assert sequence_of(rig, filling[0].batch_id) == f"backfill-{filling[0].backfill_id}"
    assert {sequence_of(rig, r.batch_id) for r in recurring} == {None}

    runs = await run_to_the_end(rig, transfer_id)
    assert {r.status for r in runs} == {"COMPLETED"}
    loaded = duckdb_rows(rig.root / str(TEAM) / "j.db")
    per_date = {r.data_date.isoformat(): r.rows_loaded for r in runs}
    assert per_date == {day: sum(row[0] == day for row in loaded) for day in per_date}
    assert len(loaded) == len(set(loaded))
    details = TransferRuns(rig.store, rig.transfers, rig.engine.batch_storing)
    for run in runs:
        found = await details.get(ACME, TEAM, run.id)
        assert [q.status for q in found.queries] == ["SUCCESS", "SUCCESS"]
        assert sum(q.rows for q in found.queries) == run.rows_loaded


async def test_a_failed_sub_query_fails_only_its_own_run_and_the_others_of_its_batch_load(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_day = date(2026, 10, 2)
    fetch = DemoConnector.fetch

    async def failing(self: DemoConnector, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
        if request.start_date == bad_day and request.accounts == (ACCOUNTS[1],):
            raise ConnectorError("The day's report is gone")
        async for chunk in fetch(self, request):
            yield chunk

    monkeypatch.setattr(DemoConnector, "fetch", failing)
    transfer_id, made = await four_days_backfilled(rig, "k.db")
    runs = {r.data_date: r for r in await run_to_the_end(rig, transfer_id)}
    bad, neighbour = runs.pop(bad_day), runs[date(2026, 10, 1)]
    assert bad.batch_id == neighbour.batch_id  # the two shared a batch
    assert bad.status == "FAILED"
    assert bad.error_message == "1 of 2 queries failed: The day's report is gone"
    assert {r.status for r in runs.values()} == {"COMPLETED"}

    loaded = duckdb_rows(rig.root / str(TEAM) / "k.db")
    assert bad_day.isoformat() not in {row[0] for row in loaded}
    for run in runs.values():  # each of the others loaded its own date's rows, both accounts
        own = [row for row in loaded if row[0] == run.data_date.isoformat()]
        assert run.rows_loaded == len(own) > 0
        assert {row[1] for row in own} == set(ACCOUNTS)

    details = TransferRuns(rig.store, rig.transfers, rig.engine.batch_storing)
    failed = (await details.get(ACME, TEAM, bad.id)).queries
    assert [(q.status, q.error) for q in failed] == [
        ("SUCCESS", None),
        ("FAILURE", "The day's report is gone"),
    ]
    beside = (await details.get(ACME, TEAM, neighbour.id)).queries
    assert [(q.status, q.error) for q in beside] == [("SUCCESS", None), ("SUCCESS", None)]
    fill = await Backfills(rig.store, clock=rig.clock).get(ACME, TEAM, made.id)
    assert fill.status == "FAILED"
    assert [e[0] for e in fill.errors] == [bad_day]


async def test_a_new_backfill_tells_the_runner_so_its_runs_start_without_waiting_a_pass(
    rig: Rig,
) -> None:
    told: list[None] = []
    backfills = Backfills(rig.store, clock=rig.clock, created=lambda: told.append(None))
    transfer_id = await make_transfer(rig, DestinationInput("DWH_DUCKDB", "wh", {"path": "l.db"}))
    with pytest.raises(BadRequest):
        await backfills.create(ACME, TEAM, transfer_id, date(2026, 10, 2), date(2026, 10, 1))
    assert told == []
    await backfills.create(ACME, TEAM, transfer_id, date(2026, 10, 1), date(2026, 10, 2))
    assert told == [None]


async def test_a_run_loaded_after_its_transfer_gained_an_account_reads_none_of_the_next_runs_rows(
    rig: Rig,
) -> None:
    import duckdb

    transfer_id, _ = await four_days_backfilled(rig, "m.db")
    await stopped_runs(rig, transfer_id, 6)  # their batches stopped, nothing loaded yet
    transfer = await rig.store.transfers.get("acme", transfer_id)
    assert transfer is not None
    grown = TransferInput(
        data_source_id="DEMO_ADS",
        schema_id=1,
        destination_id=transfer.destination_id,
        display_name="Ads daily",
        schedule=[{"run_interval": "daily", "run_hour": 4, "refresh_window": 2}],
        accounts=[TransferAccountInput(a) for a in (*ACCOUNTS, "ads-0003")],
    )
    await rig.transfers.update(ACME, TEAM, transfer_id, grown)
    runs = await run_to_the_end(rig, transfer_id)
    assert {r.status for r in runs} == {"COMPLETED"}
    with duckdb.connect(str(rig.root / str(TEAM) / "m.db"), read_only=True) as conn:
        misplaced = conn.execute(
            "SELECT count(*) FROM main.demo_ads WHERE CAST(date AS DATE) <> _qb_data_date"
        ).fetchone()
    assert misplaced == (0,)


def test_runs_share_a_batch_only_over_consecutive_dates_and_at_most_a_batch_s_worth() -> None:
    def run(run_id: int, day: int) -> TransferRunRecord:
        return TransferRunRecord(
            id=run_id,
            account="acme",
            transfer_id=1,
            data_date=date(2026, 10, day),
            run_type="Backfill",
            run_key=f"backfill-1-{day}",
            backfill_id=1,
            status="CREATED",
            batch_id=None,
            query_offset=0,
            query_count=None,
            rows_loaded=None,
            created_at=START,
            started_at=None,
            ended_at=None,
            error_message=None,
        )

    # Out of order, a gap after the 3rd, and a stretch longer than a batch holds.
    runs = [run(n, day) for n, day in enumerate([2, 1, 3, 5, 6, 7, 8, 9, 10], 1)]
    parts = transfer_runner._consecutive(runs, 4)
    assert [[r.data_date.day for r in part] for part in parts] == [
        [1, 2, 3],
        [5, 6, 7, 8],
        [9, 10],
    ]
