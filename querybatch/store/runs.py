"""Runs of sub-queries: claiming them, and every status change while they run.

All status changes here are conditional updates (``WHERE status = <expected>``, and for runs
``AND attempt = <the run's attempt>``), with the batch counters moved in the same
transaction by exactly the rows that changed. That keeps the counters honest at every
moment and lets a stale run (redelivered, timed out, cancelled) finish harmlessly: its
update matches no row.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    bindparam,
    cast,
    delete,
    literal,
    or_,
    select,
    update,
)

from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.store.counters import Deltas, count_finished, lock_batches
from querybatch.store.database import Database
from querybatch.store.prepared import PreparedInsert, PreparedWrite
from querybatch.store.records import LaneRecord, Outcome, WorkItem
from querybatch.store.repository import reads, writes
from querybatch.store.tables import batches, queries, result_chunks, results


class RunStore:
    """The repository of sub-query runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @reads
    def active_lanes(self) -> list[LaneRecord]:
        """Every batch that is not stopped, with its counters."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches).where(batches.c.status != BatchStatus.STOPPED)
            ).mappings()
            return [
                LaneRecord(
                    batch_id=row["id"],
                    account=row["account"],
                    status=BatchStatus(row["status"]),
                    query_concurrency=row["query_concurrency"],
                    schedule_time=row["schedule_time"],
                    start_time=row["start_time"],
                    timeout_seconds=row["timeout_seconds"],
                    exclude_account_errors=row["settings"].settings.add_exclude_account_errors,
                    queued=row["n_queued"],
                    running=row["n_running"],
                    sequence=row["settings"].sequence,
                )
                for row in rows
            ]

    @writes
    def claim(self, lane: LaneRecord, limit: int, now: float, lease_until: float) -> list[WorkItem]:
        """Take up to ``limit`` scheduled sub-queries of a batch, in order, for an executor."""
        if limit <= 0:
            return []
        claim = _CLAIM if self.db.is_sqlite else _CLAIM_SKIP_LOCKED
        params = {"b_id": lane.batch_id, "limit": limit, "lease": lease_until}
        with self.db.writing() as conn:
            lock_batches(conn, [lane.batch_id])
            rows = claim.returning(conn, params)
            if rows:
                _MARK_RUNNING.execute(conn, {"b_id": lane.batch_id, "now": now})
        rows = sorted(rows, key=lambda row: row[4])  # position
        return [
            WorkItem(
                query_id=query_id,
                batch_id=lane.batch_id,
                account=lane.account,
                attempt=attempt,
                spec=spec,
                fingerprint=fingerprint,
                exclude_account_errors=lane.exclude_account_errors,
            )
            for query_id, attempt, spec, fingerprint, _ in rows
        ]

    @writes
    def renew_leases(self, items: Iterable[WorkItem], lease_until: float) -> None:
        """Tell the store these runs are alive, so that nobody takes their sub-queries back."""
        params = [{"q_id": i.query_id, "q_attempt": i.attempt, "lease": lease_until} for i in items]
        if params:
            with self.db.writing() as conn:
                _RENEW.executemany(conn, params)

    @writes
    def record_runs(
        self,
        started: Sequence[tuple[WorkItem, float]],
        outcomes: Sequence[Outcome],
        lease_until: float,
        now: float,
    ) -> tuple[list[bool], list[bool], list[str]]:
        """Record runs that started and runs that ended, in one transaction.

        Returns which starts and which outcomes applied (a run that no longer owns its query
        applies nothing) and the batches that stopped because nothing is left to do. Ends are
        written before starts, so a slot handed from a finished run to the next never shows
        as one running query too many.

        A successful run's result row and last chunks are written with its outcome; a run
        whose outcome no longer applies has its chunks removed, so a sub-query that ran twice
        keeps its rows once.
        """
        deltas = Deltas()
        ended = [False] * len(outcomes)
        began = [False] * len(started)
        # A fixed row order keeps concurrent writers (PostgreSQL) from deadlocking.
        ordered = sorted(enumerate(outcomes), key=lambda pair: (pair[1].batch_id, pair[1].query_id))
        with self.db.writing() as conn:
            lock_batches(conn, [o.batch_id for o in outcomes] + [i.batch_id for i, _ in started])
            if self._record_all(conn, started, outcomes, lease_until):
                for outcome in outcomes:
                    deltas.move(outcome.batch_id, QueryStatus.RUNNING, outcome.status)
                for item, _ in started:
                    deltas.move(item.batch_id, QueryStatus.QUEUED, QueryStatus.RUNNING)
                count_finished(conn, outcomes)
                return [True] * len(started), [True] * len(outcomes), deltas.apply(conn, now)
            for index, outcome in ordered:
                ended[index] = self._apply_outcome(conn, outcome, deltas)
            for index, (item, at) in enumerate(started):
                params = {
                    "q_id": item.query_id,
                    "q_attempt": item.attempt,
                    "at": at,
                    "lease": lease_until,
                }
                changed = _START.execute(conn, params)
                deltas.move(item.batch_id, QueryStatus.QUEUED, QueryStatus.RUNNING, changed)
                if not changed and item.takeover:
                    changed = _TAKE_OVER.execute(conn, params)
                began[index] = changed == 1
            count_finished(conn, [o for o, ok in zip(outcomes, ended, strict=True) if ok])
            stopped = deltas.apply(conn, now)
        return began, ended, stopped

    @staticmethod
    def _record_all(
        conn: Connection,
        started: Sequence[tuple[WorkItem, float]],
        outcomes: Sequence[Outcome],
        lease_until: float,
    ) -> bool:
        """The common case in a few statements: every run still owns its query.

        Each kind of row is written with one executemany; if the number of rows updated
        shows that some run lost its query, everything is undone (a savepoint) and the
        caller records run by run instead.
        """
        if not conn.dialect.supports_sane_multi_rowcount or any(i.takeover for i, _ in started):
            return False
        savepoint = conn.begin_nested()
        new_results = [o for o in outcomes if o.result is not None]
        if new_results:
            _INSERT_RESULT.executemany(conn, [_result_row(o) for o in new_results])
        finishes = [_finish_params(o) for o in outcomes]
        if _FINISH.executemany(conn, finishes) != len(outcomes):
            savepoint.rollback()
            return False
        starts = [
            {"q_id": i.query_id, "q_attempt": i.attempt, "at": at, "lease": lease_until}
            for i, at in started
        ]
        if _START.executemany(conn, starts) != len(starts):
            savepoint.rollback()
            return False
        chunks = [chunk for o in new_results for chunk in _chunk_rows(o)]
        if chunks:
            _INSERT_CHUNK.executemany(conn, chunks)
        savepoint.commit()
        return True

    def _apply_outcome(self, conn: Connection, outcome: Outcome, deltas: Deltas) -> bool:
        if outcome.result is not None:
            _INSERT_RESULT.executemany(conn, [_result_row(outcome)])
        changed = _FINISH.execute(conn, _finish_params(outcome))
        if outcome.result is not None:
            if changed and (chunks := _chunk_rows(outcome)):
                _INSERT_CHUNK.executemany(conn, chunks)
            else:
                result_id = outcome.result.id
                conn.execute(delete(results).where(results.c.id == result_id))
                conn.execute(delete(result_chunks).where(result_chunks.c.result_id == result_id))
        deltas.move(outcome.batch_id, QueryStatus.RUNNING, outcome.status, changed)
        return changed == 1

    @writes
    def release_claims(self, items: Sequence[WorkItem], now: float) -> int:
        """Put claimed sub-queries that were never handed to a run back on the schedule; how
        many. Their attempt stays used: another node may have adopted the claim meanwhile and
        handed it out, and a message of that attempt must never pass for the next claim."""
        deltas = Deltas()
        released = 0
        with self.db.writing() as conn:
            lock_batches(conn, [item.batch_id for item in items])
            for item in sorted(items, key=lambda i: (i.batch_id, i.query_id)):
                changed = conn.execute(
                    update(queries)
                    .where(
                        queries.c.id == item.query_id,
                        queries.c.attempt == item.attempt,
                        queries.c.status == QueryStatus.QUEUED,
                    )
                    .values(status=QueryStatus.SCHEDULED, lease_expires_at=None)
                ).rowcount
                deltas.move(item.batch_id, QueryStatus.QUEUED, QueryStatus.SCHEDULED, changed)
                released += changed
            deltas.apply(conn, now)
        return released

    @writes
    def requeue(
        self, now: float, *, everything: bool = False, max_attempts: int | None = None
    ) -> int:
        """Put sub-queries whose run went silent (or, at a local start, every claimed one) back.

        They become SCHEDULED again and run anew with a higher attempt number; a run of the
        old attempt that is somehow still going can no longer record anything. A sub-query
        already claimed ``max_attempts`` times ends FAILURE (QUERY_ABANDONED) instead: every
        claim counts, so one whose runs kill or hang the process cannot do so forever.
        """
        deltas = Deltas()
        moved = 0
        in_flight = [QueryStatus.QUEUED, QueryStatus.RUNNING]
        # Only a sub-query in flight has a lease: saying so lets the partial index serve.
        lapsed = [
            queries.c.lease_expires_at.is_not(None)
            if everything
            else queries.c.lease_expires_at < now
        ]
        with self.db.writing() as conn:
            affected = select(queries.c.batch_id).where(queries.c.status.in_(in_flight), *lapsed)
            lock_batches(conn, [row.batch_id for row in conn.execute(affected.distinct())])
            abandoned: list[Outcome] = []
            for source in in_flight:
                condition = [queries.c.status == source, *lapsed]
                if max_attempts is not None:
                    given_up = self._abandon(
                        conn, [*condition, queries.c.attempt >= max_attempts], now
                    )
                    for outcome in given_up:
                        deltas.move(outcome.batch_id, source, QueryStatus.FAILURE)
                    abandoned += given_up
                rows = conn.execute(
                    update(queries)
                    .where(*condition)
                    .values(status=QueryStatus.SCHEDULED, lease_expires_at=None, start_time=None)
                    .returning(queries.c.batch_id)
                ).all()
                for row in rows:
                    deltas.move(row.batch_id, source, QueryStatus.SCHEDULED)
                moved += len(rows)
            count_finished(conn, abandoned)
            deltas.apply(conn, now)
        return moved

    @staticmethod
    def _abandon(conn: Connection, condition: list[Any], now: float) -> list[Outcome]:
        """End the matching in-flight sub-queries as FAILURE: their attempts are used up."""
        message = (
            literal("Abandoned after ", String)
            + cast(queries.c.attempt, String)
            + literal(" attempts", String)
        )
        rows = conn.execute(
            update(queries)
            .where(*condition)
            .values(
                status=QueryStatus.FAILURE,
                end_time=now,
                lease_expires_at=None,
                error_code="QUERY_ABANDONED",
                error_message=message,
                error_description=(
                    "Every run of this query was interrupted before it ended: the server or "
                    "worker stopped, or the run stopped answering. It is not tried again."
                ),
            )
            .returning(queries.c.id, queries.c.batch_id, queries.c.attempt, queries.c.ds_id)
        ).all()
        return [
            Outcome(
                query_id=row.id,
                batch_id=row.batch_id,
                attempt=row.attempt,
                status=QueryStatus.FAILURE,
                end_time=now,
                ds_id=row.ds_id,
            )
            for row in rows
        ]

    @writes
    def stop_batch(self, batch_id: str, now: float, *, cancelled: bool) -> tuple[list[int], bool]:
        """Stop a batch and every sub-query of it that has not finished.

        Returns the ids of the sub-queries that were claimed or running (their runs must be
        told to stop) and whether the batch was stopped by this call; stopping a stopped
        batch is harmless and changes nothing.
        """
        values: dict[str, Any] = {"status": BatchStatus.STOPPED, "end_time": now}
        if cancelled:
            values["cancel_time"] = now
        deltas = Deltas()
        with self.db.writing() as conn:
            stopped_now = conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status != BatchStatus.STOPPED)
                .values(values)
            ).rowcount
            if not stopped_now:
                return [], False
            in_flight = [
                row.id
                for row in conn.execute(
                    select(queries.c.id).where(
                        queries.c.batch_id == batch_id,
                        queries.c.status.in_([QueryStatus.QUEUED, QueryStatus.RUNNING]),
                    )
                )
            ]
            for source in (QueryStatus.SCHEDULED, QueryStatus.QUEUED, QueryStatus.RUNNING):
                changed = conn.execute(
                    update(queries)
                    .where(queries.c.batch_id == batch_id, queries.c.status == source)
                    .values(stopped_values(now, cancelled=cancelled))
                ).rowcount
                deltas.move(batch_id, source, QueryStatus.STOPPED, changed)
            # Sub-queries not stored yet are stored stopped (JobStore.store_more), and are
            # counted so now.
            unstored = conn.execute(
                select(batches.c.query_amount - batches.c.n_stored).where(
                    batches.c.id == batch_id, batches.c.n_stored.is_not(None)
                )
            ).scalar()
            if unstored:
                deltas.move(batch_id, QueryStatus.SCHEDULED, QueryStatus.STOPPED, unstored)
            deltas.apply(conn, now)
        return in_flight, True

    @reads
    def still_owned(self, items: Sequence[tuple[int, int]], *, waiting: bool = False) -> set[int]:
        """Of these (query id, attempt) pairs, the queries that attempt still holds (only
        those whose run has not started yet, if ``waiting``)."""
        statuses = [QueryStatus.QUEUED] if waiting else [QueryStatus.QUEUED, QueryStatus.RUNNING]
        owned: set[int] = set()
        with self.db.reading() as conn:
            for start in range(0, len(items), 500):
                attempts = dict(items[start : start + 500])
                rows = conn.execute(
                    select(queries.c.id, queries.c.attempt).where(
                        queries.c.id.in_(attempts), queries.c.status.in_(statuses)
                    )
                )
                owned.update(row.id for row in rows if attempts[row.id] == row.attempt)
        return owned

    @reads
    def in_flight_items(self) -> list[WorkItem]:
        """Every claimed or running sub-query (a new scheduler leader adopts them)."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(
                    queries.c.id,
                    queries.c.batch_id,
                    queries.c.account,
                    queries.c.attempt,
                    queries.c.spec,
                    queries.c.fingerprint,
                    batches.c.settings,
                )
                .join(batches, batches.c.id == queries.c.batch_id)
                .where(
                    queries.c.status.in_([QueryStatus.QUEUED, QueryStatus.RUNNING]),
                    queries.c.lease_expires_at.is_not(None),  # as the partial index has it
                )
            )
            return [
                WorkItem(
                    query_id=row.id,
                    batch_id=row.batch_id,
                    account=row.account,
                    attempt=row.attempt,
                    spec=row.spec,
                    fingerprint=row.fingerprint,
                    exclude_account_errors=row.settings.settings.add_exclude_account_errors,
                )
                for row in rows
            ]


def _result_row(outcome: Outcome) -> tuple[Any, ...]:
    """A run's ``results`` row, in the order of ``_INSERT_RESULT``'s columns."""
    result = outcome.result
    assert result is not None
    return (
        result.id,
        result.total_rows,
        result.total_columns,
        result.run_seconds,
        outcome.end_time,
    )


def _finish_params(outcome: Outcome) -> dict[str, Any]:
    error = outcome.error
    return {
        "q_id": outcome.query_id,
        "q_attempt": outcome.attempt,
        "new_status": outcome.status,
        "end": outcome.end_time,
        "result": outcome.result.id if outcome.result is not None else outcome.shared_result_id,
        "e_code": error.code if error else None,
        "e_message": error.message[:255] if error else None,
        "e_description": (error.description or None) if error else None,
        "excluded": outcome.excluded_accounts,
    }


def _chunk_rows(outcome: Outcome) -> list[tuple[Any, ...]]:
    """A run's last ``result_chunks`` rows, in the order of ``_INSERT_CHUNK``'s columns."""
    assert outcome.result is not None
    result_id, end = outcome.result.id, outcome.end_time
    return [(result_id, seq, n, payload, end) for seq, n, payload in outcome.result.last_chunks]


def stopped_values(end_time: float, *, cancelled: bool) -> dict[str, Any]:
    """What a sub-query stopped with its batch holds: cancelled, or timed out."""
    return {
        "status": QueryStatus.STOPPED,
        "end_time": end_time,
        "lease_expires_at": None,
        "error_code": "QUERY_STOPPED",
        "error_message": "Cancelled" if cancelled else "Timed out",
    }


def new_result_id() -> str:
    """A fresh id for the rows of one run: the time in milliseconds (12 hex digits), then 80
    random bits.

    Ids in the order they were made keep the indexes keyed by them (``results``,
    ``result_chunks`` and a sub-query's ``result_id``) growing at their end, and the results
    of sub-queries that ran together on the same pages. Random ids put every run's entries
    on pages all over those indexes: each commit rewrote pages in proportion to the store's
    size, and a batch's cost per sub-query grew with it (docs/performance.md).
    """
    return f"{time.time_ns() // 1_000_000:012x}" + secrets.token_hex(10)


# The writes every sub-query's run makes, prepared (store.prepared): a batch of 10,000
# sub-queries runs each of them 10,000 times on the store's one writer.
_CANDIDATES = (
    select(queries.c.id)
    .where(
        queries.c.batch_id == bindparam("b_id"),
        queries.c.status == QueryStatus.SCHEDULED,
    )
    .order_by(queries.c.position)
    .limit(bindparam("limit"))
)


def _claim(candidates: Select[Any]) -> PreparedWrite:
    return PreparedWrite(
        update(queries)
        .where(queries.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=QueryStatus.QUEUED,
            attempt=queries.c.attempt + 1,
            lease_expires_at=bindparam("lease"),
        )
        .returning(
            queries.c.id,
            queries.c.attempt,
            queries.c.spec,
            queries.c.fingerprint,
            queries.c.position,
        )
    )


_CLAIM = _claim(_CANDIDATES)
# Claimers on other nodes pass over each other's rows instead of queueing behind them.
_CLAIM_SKIP_LOCKED = _claim(_CANDIDATES.with_for_update(skip_locked=True))

_MARK_RUNNING = PreparedWrite(
    update(batches)
    .where(batches.c.id == bindparam("b_id"), batches.c.status == BatchStatus.QUEUED)
    .values(status=BatchStatus.RUNNING, start_time=bindparam("now"))
)

_START = PreparedWrite(
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        queries.c.status == QueryStatus.QUEUED,
    )
    .values(
        status=QueryStatus.RUNNING, start_time=bindparam("at"), lease_expires_at=bindparam("lease")
    )
)

# A redelivered message of a run whose worker died: the same attempt, still RUNNING.
_TAKE_OVER = PreparedWrite(
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        queries.c.status == QueryStatus.RUNNING,
    )
    .values(start_time=bindparam("at"), lease_expires_at=bindparam("lease"))
)

# No IN here: an executemany statement cannot expand a list parameter.
_RENEW = PreparedWrite(
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        or_(queries.c.status == QueryStatus.QUEUED, queries.c.status == QueryStatus.RUNNING),
    )
    .values(lease_expires_at=bindparam("lease"))
)

_FINISH = PreparedWrite(
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        queries.c.status == QueryStatus.RUNNING,
    )
    .values(
        status=bindparam("new_status"),
        end_time=bindparam("end"),
        lease_expires_at=None,
        result_id=bindparam("result"),
        error_code=bindparam("e_code"),
        error_message=bindparam("e_message"),
        error_description=bindparam("e_description"),
        excluded_accounts=bindparam("excluded", type_=queries.c.excluded_accounts.type),
    )
)

# Every column of a run's result row and of its last chunks, as plain values.
_INSERT_RESULT = PreparedInsert(
    results, ["id", "total_rows", "total_columns", "run_seconds", "created_at"]
)
_INSERT_CHUNK = PreparedInsert(
    result_chunks, ["result_id", "seq", "row_count", "payload", "created_at"]
)
