"""Expiry in the background: slice after slice to the end, lost runs' chunks after their grace."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import RESULT_TTL
from fakes import create_batch
from sqlalchemy import func, select, update

from querybatch.domain.status import BatchStatus
from querybatch.engine.expiry import Expiry
from querybatch.store.store import Store
from querybatch.store.tables import batches, queries, result_chunks


def count(store: Store, table: object) -> int:
    with store.db.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


async def stopped_batches(store: Store, n: int, size: int, end: float) -> None:
    for i in range(n):
        await create_batch(store, f"qrb_{i:012}", size=size, now=end - 10)
    with store.db.writing() as conn:
        conn.execute(update(batches).values(status=BatchStatus.STOPPED, end_time=end))


async def test_a_pass_deletes_everything_expired_in_many_small_slices(store: Store) -> None:
    await stopped_batches(store, 4, 7, end=1000.0)
    await store.results.write_chunk("lost_run", 0, [("2026-01-01",)], 1000.0)
    expiry = Expiry(
        store,
        orphan_grace=60.0,
        slice_rows=3,
        slice_chunks=1,
        pause=0.0,
        clock=lambda: 1000.0 + RESULT_TTL + 1,
    )
    assert await expiry.run_pass() == (28, 4, 1)
    assert count(store, queries) == 0 and count(store, batches) == 0
    assert count(store, result_chunks) == 0


async def test_a_run_of_an_earlier_process_is_lost_at_once_a_running_one_is_not(
    store: Store,
) -> None:
    await store.results.write_chunk("earlier_process", 0, [("2026-01-01",)], 990.0)
    await store.results.write_chunk("this_process", 0, [("2026-01-01",)], 1001.0)
    expiry = Expiry(store, orphan_grace=7200.0, orphans_before=1000.0, clock=lambda: 1005.0)
    assert await expiry.run_pass() == (0, 0, 1)
    assert await store.results.read_chunks("this_process", 0, 0) != []


async def test_one_pass_runs_at_a_time_in_the_background_and_stops(store: Store) -> None:
    await stopped_batches(store, 2, 5, end=1000.0)
    expiry = Expiry(
        store, orphan_grace=60.0, slice_rows=1, pause=0.05, clock=lambda: 1000.0 + RESULT_TTL + 1
    )
    expiry.start()
    first = expiry._task
    expiry.start()
    assert expiry._task is first and expiry.running
    await asyncio.sleep(0.2)
    await expiry.stop()
    assert not expiry.running
    left = count(store, queries)
    assert 0 < left < 10  # it had begun, and stopped before the end


def checkpointed_size(store: Store) -> int:
    """The store file's size once the write-ahead log is written back into it."""
    import sqlite3
    from pathlib import Path

    path = Path(store.db.url.database or "")
    with sqlite3.connect(path, timeout=10) as raw:
        # A checkpoint that meets a reader or writer of the store's own pool stops short and
        # says so ("busy"): the file is measured only once the whole log is in it.
        for _ in range(100):
            busy, _log, _moved = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the write-ahead log could not be written back")
    return path.stat().st_size


async def test_the_space_a_pass_freed_goes_back_to_the_disk_a_slice_at_a_time(
    store: Store,
) -> None:
    rows = [("x" * 1000,)] * 50  # about 50 kB a chunk
    for n in range(300):
        await store.results.write_chunk(f"lost_{n:04}", 0, rows, 990.0)
    full = checkpointed_size(store)
    expiry = Expiry(store, orphan_grace=7200.0, orphans_before=1000.0, slice_pages=200, pause=0.0)
    assert await expiry.run_pass() == (0, 0, 300)
    assert full > 10_000_000 and checkpointed_size(store) < full // 10
    assert await store.upkeep.return_space(200) == 0


async def test_a_pass_looks_only_at_chunks_written_since_the_last_one(store: Store) -> None:
    await store.results.write_chunk("lost_early", 0, [("2026-01-01",)], 100.0)
    clock = [1000.0]
    expiry = Expiry(store, orphan_grace=60.0, slice_chunks=1, pause=0.0, clock=lambda: clock[0])
    assert await expiry.run_pass() == (0, 0, 1)
    assert await store.upkeep.orphans_checked() == (940.0, "", -1)
    # Written (as a clock gone back would) before where the last pass ended: never looked at.
    await store.results.write_chunk("lost_behind", 0, [("2026-01-01",)], 500.0)
    await store.results.write_chunk("lost_after", 0, [("2026-01-01",)], 950.0)
    clock[0] = 2000.0
    assert await expiry.run_pass() == (0, 0, 1)
    assert await store.results.read_chunks("lost_behind", 0, 0) != []
    assert await store.results.read_chunks("lost_after", 0, 0) == []
    assert await store.upkeep.orphans_checked() == (1940.0, "", -1)


def test_while_work_runs_expiry_takes_a_small_share_of_the_time(store: Store) -> None:
    from querybatch.engine.pacing import BUSY_SHARE

    working = [False]
    expiry = Expiry(store, orphan_grace=60.0, pause=0.05, busy=lambda: working[0])
    assert expiry.pause_after(0.2) == 0.05  # nothing runs: as fast as the pause lets it
    working[0] = True
    assert expiry.pause_after(0.001) == 0.05
    pause = expiry.pause_after(0.2)
    assert 0.2 / (0.2 + pause) == pytest.approx(BUSY_SHARE)


async def test_a_pass_beside_work_still_gets_to_the_end(store: Store) -> None:
    await stopped_batches(store, 2, 3, end=1000.0)
    expiry = Expiry(
        store,
        orphan_grace=60.0,
        slice_rows=2,
        pause=0.0,
        clock=lambda: 1000.0 + RESULT_TTL + 1,
        busy=lambda: True,
    )
    assert await expiry.run_pass() == (6, 2, 0)


def test_a_slice_takes_on_what_fits_in_its_time_at_the_last_one_s_pace() -> None:
    from querybatch.engine.expiry import SliceSize

    rows = SliceSize(1000, seconds=0.02)
    assert rows.size == 125  # a pass may begin beside work
    rows.after(0.001)  # fast: at most twice as many next time
    assert rows.size == 250
    rows.after(0.001)
    rows.after(0.001)
    rows.after(0.0)
    assert rows.size == 1000  # never more than the most
    rows.after(0.1)  # five times too slow: a fifth as many
    assert rows.size == 200 and rows.spent == 0.1
    rows.after(30.0)  # a store that stalls: still one at a time
    assert rows.size == 1
