"""The per-source counters of finished sub-queries, written by many workers at once.

Two workers' first outcomes of a data source used to race: both found no counter row, both
inserted one, and the loser's whole group of outcomes failed (its runs' work was lost until
their leases lapsed; seen in CI as sub-queries run twice).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection, select, text

from querybatch.domain.status import QueryStatus
from querybatch.store.counters import count_finished
from querybatch.store.records import Outcome
from querybatch.store.store import Store
from querybatch.store.tables import source_stats


def finished(query_id: int, ds_id: str = "DEMO_WEB") -> Outcome:
    return Outcome(
        query_id=query_id,
        batch_id="qrb_0",
        attempt=1,
        status=QueryStatus.SUCCESS,
        end_time=time.time(),
        ds_id=ds_id,
    )


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        select(source_stats.c.ds_id, source_stats.c.status, source_stats.c.finished)
    )
    return {(row.ds_id, row.status): row.finished for row in rows}


def wait_until_blocked(watcher: Connection, pid: int) -> None:
    """Return once the session ``pid`` waits for a lock another transaction holds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = watcher.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar()
        watcher.rollback()
        if waiting == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first")


def test_two_writers_counting_a_sources_first_outcomes_at_once_both_count(
    pg_schema: tuple[str, str],
) -> None:
    store = Store.open(pg_schema[0], result_ttl=60)
    engine = store.db.engine
    try:
        with engine.connect() as first, engine.connect() as second, engine.connect() as watcher:
            count_finished(first, [finished(1), finished(2)])  # its row, not committed yet
            second_pid = second.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with ThreadPoolExecutor(1) as pool:
                racing = pool.submit(count_finished, second, [finished(3)])
                wait_until_blocked(watcher, second_pid)  # it found no row either
                first.commit()
                racing.result(timeout=10)  # raised IntegrityError before
            second.commit()
            assert counts(watcher) == {("DEMO_WEB", "SUCCESS"): 3}
    finally:
        store.close()


def test_counters_add_up_per_source_and_status(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", result_ttl=60)
    failed = Outcome(
        query_id=9, batch_id="qrb_0", attempt=1, status=QueryStatus.FAILURE, end_time=0.0
    )
    try:
        with store.db.engine.connect() as conn:
            count_finished(conn, [finished(1), finished(2, "DEMO_ADS"), failed])
            count_finished(conn, [finished(3), finished(4)])
            count_finished(conn, [])
            conn.commit()
            assert counts(conn) == {
                ("DEMO_WEB", "SUCCESS"): 3,
                ("DEMO_ADS", "SUCCESS"): 1,
                ("", "FAILURE"): 1,
            }
    finally:
        store.close()
