"""Batch counters: moved in the same transaction as the rows whose status changed.

Every transaction that changes query statuses collects the changes in :class:`Deltas` and
applies them once, after locking the batch rows it touches (always in id order, so that
concurrent writers queue instead of deadlocking).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from querybatch.domain.status import BatchStatus, QueryStatus, can_move, progress_key
from querybatch.store.prepared import PreparedWrite
from querybatch.store.records import Outcome
from querybatch.store.tables import batches, source_stats

COUNTER_COLUMNS = {
    "queued": "n_queued",
    "running": "n_running",
    "success": "n_success",
    "failure": "n_failure",
    "stopped": "n_stopped",
}


class Deltas:
    """Counter changes per batch, collected while rows change and applied once."""

    def __init__(self) -> None:
        self._by_batch: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def move(self, batch_id: str, source: QueryStatus, target: QueryStatus, n: int = 1) -> None:
        """Record that ``n`` queries of a batch moved from ``source`` to ``target``.

        Raises ValueError for a move the state machine does not allow, which undoes the
        transaction that made it: an impossible status is never written.
        """
        if not can_move(source, target):
            raise ValueError(f"a query cannot move from {source} to {target}")
        if n and progress_key(source) != progress_key(target):
            counters = self._by_batch[batch_id]
            counters[COUNTER_COLUMNS[progress_key(source)]] -= n
            counters[COUNTER_COLUMNS[progress_key(target)]] += n

    def apply(self, conn: Connection, now: float) -> list[str]:
        """Move the counters; stop batches left with nothing to do. Returns those stopped."""
        if not self._by_batch:
            return []
        params = [
            {"b_id": batch_id, **{col: changes.get(col, 0) for col in COUNTER_COLUMNS.values()}}
            for batch_id, changes in sorted(self._by_batch.items())
        ]
        _BUMP_COUNTERS.executemany(conn, params)
        return finish_idle_batches(conn, list(self._by_batch), now)


_BUMP_COUNTERS = PreparedWrite(
    update(batches)
    .where(batches.c.id == bindparam("b_id"))
    .values(
        {
            getattr(batches.c, col): getattr(batches.c, col) + bindparam(col)
            for col in COUNTER_COLUMNS.values()
        }
    )
)


def lock_batches(conn: Connection, batch_ids: Iterable[str]) -> None:
    """Lock batch rows before the queries of them (PostgreSQL), always in id order.

    Every transaction that moves counters takes its batches' rows first and in the same
    order, so concurrent writers (workers, API nodes, the scheduler) queue up instead of
    deadlocking on query rows and batch rows taken in opposite orders.
    """
    ids = sorted(set(batch_ids))
    if ids and conn.dialect.name == "postgresql":
        conn.execute(
            select(batches.c.id)
            .where(batches.c.id.in_(ids))
            .order_by(batches.c.id)
            .with_for_update()
        ).all()


def finish_idle_batches(conn: Connection, batch_ids: Sequence[str], now: float) -> list[str]:
    """Stop the given batches that have no queued or running query left."""
    stopped = []
    for batch_id in sorted(set(batch_ids)):
        rows = _STOP_IF_IDLE.returning(conn, {"b_id": batch_id, "now": now})
        stopped += [row[0] for row in rows]
    return stopped


_STOP_IF_IDLE = PreparedWrite(
    update(batches)
    .where(
        batches.c.id == bindparam("b_id"),
        batches.c.status != BatchStatus.STOPPED,
        batches.c.n_queued == 0,
        batches.c.n_running == 0,
    )
    .values(status=BatchStatus.STOPPED, end_time=bindparam("now"))
    .returning(batches.c.id)
)


def count_finished(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """Add applied outcomes to the per-source counters (one statement per source and status)."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for outcome in outcomes:
        total = totals[(outcome.ds_id, outcome.status.value)]
        total[0] += 1
        total[1] += outcome.result.run_seconds if outcome.result else 0.0
    if not totals:
        return
    _COUNT_FINISHED[conn.dialect.name].executemany(
        conn,
        [
            {"ds_id": ds_id, "status": status, "finished": int(finished), "run_seconds": seconds}
            for (ds_id, status), (finished, seconds) in sorted(totals.items())
        ],
    )


def _count_finished(insert: Callable[[Table], Any]) -> PreparedWrite:
    # One upsert: an update, then an insert where it changed nothing, lets two writers that
    # both found no row (two workers' first outcomes of a source) insert it twice, and the
    # loser's whole group of outcomes fail.
    upsert = insert(source_stats).values(
        ds_id=bindparam("ds_id"),
        status=bindparam("status"),
        finished=bindparam("finished"),
        run_seconds=bindparam("run_seconds"),
    )
    return PreparedWrite(
        upsert.on_conflict_do_update(
            index_elements=[source_stats.c.ds_id, source_stats.c.status],
            set_={
                "finished": source_stats.c.finished + upsert.excluded.finished,
                "run_seconds": source_stats.c.run_seconds + upsert.excluded.run_seconds,
            },
        )
    )


_COUNT_FINISHED = {
    "postgresql": _count_finished(postgresql.insert),
    "sqlite": _count_finished(sqlite.insert),
}
