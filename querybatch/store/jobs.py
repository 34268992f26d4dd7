"""Batches and queries: creating them, reading them, and every status change.

All status changes go through this module, each as a conditional update (``WHERE status =
<expected>``, and for runs ``AND attempt = <the run's attempt>``), with the batch counters
moved in the same transaction by exactly the rows that changed. That is what keeps the
counters honest at every moment and lets a stale run (redelivered, timed out, cancelled)
finish harmlessly: its update matches no row.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from querybatch.domain.status import BatchStatus, QueryStatus, progress_key
from querybatch.store.database import Database
from querybatch.store.records import (
    BatchRecord,
    Counts,
    ErrorInfo,
    LaneRecord,
    Outcome,
    QueryRecord,
    ResultRecord,
    WorkItem,
)
from querybatch.store.tables import batches, queries, result_chunks, results, source_stats

COUNTER_COLUMNS = {
    "queued": "n_queued",
    "running": "n_running",
    "success": "n_success",
    "failure": "n_failure",
    "stopped": "n_stopped",
}

_QUERY_COLUMNS = [*queries.c, batches.c.kind, batches.c.settings.label("batch_settings")]
_QUERY_COLUMNS += [batches.c.end_time.label("batch_end_time")]
_RESULT_COLUMNS = [
    results.c.total_rows,
    results.c.total_columns,
    results.c.run_seconds,
    results.c.created_at.label("result_created_at"),
]


class Deltas:
    """Counter changes per batch, collected while rows change and applied once."""

    def __init__(self) -> None:
        self._by_batch: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def move(self, batch_id: str, source: QueryStatus, target: QueryStatus, n: int = 1) -> None:
        """Record that ``n`` queries of a batch moved from ``source`` to ``target``."""
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
        conn.execute(_BUMP_COUNTERS, params)
        return finish_idle_batches(conn, list(self._by_batch), now)


_BUMP_COUNTERS = (
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
    rows = conn.execute(
        update(batches)
        .where(
            batches.c.id.in_(batch_ids),
            batches.c.status != BatchStatus.STOPPED,
            batches.c.n_queued == 0,
            batches.c.n_running == 0,
        )
        .values(status=BatchStatus.STOPPED, end_time=now)
        .returning(batches.c.id)
    )
    return [row.id for row in rows]


class JobStore:
    """The repository of batches and queries."""

    def __init__(self, db: Database, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    # -- creating ---------------------------------------------------------------------------

    def create_batch(
        self,
        *,
        batch_id: str,
        kind: str,
        account: str,
        key_id: str,
        settings: dict[str, Any],
        query_concurrency: int,
        timeout_seconds: int,
        schedule_time: float,
        subqueries: Sequence[tuple[str, dict[str, Any], str]],
        now: float,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        callback_url: str | None = None,
        request_id: str | None = None,
        cached: tuple[str, float] | None = None,
    ) -> BatchRecord:
        """Store a batch and its sub-queries (schedule id, spec, fingerprint), all or nothing.

        ``cached`` (result id, cache time) stores a one-query batch already answered from the
        cache of an identical earlier query.
        """
        status = QueryStatus.SUCCESS if cached else QueryStatus.SCHEDULED
        with self.db.writing() as conn:
            conn.execute(
                insert(batches).values(
                    id=batch_id,
                    kind=kind,
                    account=account,
                    key_id=key_id,
                    status=BatchStatus.STOPPED if cached else BatchStatus.QUEUED,
                    settings=settings,
                    query_concurrency=query_concurrency,
                    timeout_seconds=timeout_seconds,
                    created_at=now,
                    schedule_time=schedule_time,
                    start_time=now if cached else None,
                    end_time=now if cached else None,
                    query_amount=len(subqueries),
                    n_queued=0 if cached else len(subqueries),
                    n_success=len(subqueries) if cached else 0,
                    n_running=0,
                    n_failure=0,
                    n_stopped=0,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    callback_url=callback_url,
                )
            )
            conn.execute(
                insert(queries),
                [
                    {
                        "account": account,
                        "schedule_id": schedule_id,
                        "batch_id": batch_id,
                        "position": position,
                        "status": status,
                        "ds_id": spec["ds_id"],
                        "spec": spec,
                        "fingerprint": fingerprint,
                        "request_id": request_id,
                        "created_at": now,
                        "start_time": now if cached else None,
                        "end_time": now if cached else None,
                        "attempt": 0,
                        "result_id": cached[0] if cached else None,
                        "cache_used": cached is not None,
                        "cache_time": cached[1] if cached else None,
                    }
                    for position, (schedule_id, spec, fingerprint) in enumerate(subqueries, 1)
                ],
            )
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().one()
        return _batch_record(row)

    def find_cached(
        self, account: str, fingerprint: str, since: float, now: float
    ) -> tuple[str, float] | None:
        """The newest live result of an identical successful query that ended after ``since``."""
        with self.db.reading() as conn:
            row = conn.execute(
                select(queries.c.result_id, queries.c.end_time)
                .join(batches, batches.c.id == queries.c.batch_id)
                .where(
                    queries.c.fingerprint == fingerprint,
                    queries.c.status == QueryStatus.SUCCESS,
                    queries.c.account == account,
                    queries.c.end_time >= since,
                    queries.c.result_id.is_not(None),
                    batches.c.end_time >= now - self.result_ttl,
                )
                .order_by(queries.c.end_time.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.result_id, row.end_time)

    # -- reading ----------------------------------------------------------------------------

    def get_batch(self, account: str, batch_id: str, now: float) -> BatchRecord | None:
        """A live query batch of this tenant, or None (unknown, another tenant's, expired)."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(batches).where(
                        batches.c.id == batch_id,
                        batches.c.account == account,
                        batches.c.kind == "batch",
                    )
                )
                .mappings()
                .first()
            )
        if row is None or self._expired(row["end_time"], now):
            return None
        return _batch_record(row)

    def find_by_idempotency_key(self, account: str, key: str) -> BatchRecord | None:
        """The batch created earlier with this Idempotency-Key, if any."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(batches).where(
                        batches.c.account == account, batches.c.idempotency_key == key
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _batch_record(row)

    def list_batches(
        self,
        account: str,
        *,
        status: BatchStatus | None,
        created_ge: float | None,
        created_le: float | None,
        after: tuple[float, str] | None,
        limit: int,
    ) -> list[BatchRecord]:
        """This tenant's query batches, newest first, starting after the cursor ``after``."""
        conditions = [batches.c.account == account, batches.c.kind == "batch"]
        if status is not None:
            conditions.append(batches.c.status == status)
        if created_ge is not None:
            conditions.append(batches.c.created_at >= created_ge)
        if created_le is not None:
            conditions.append(batches.c.created_at <= created_le)
        if after is not None:
            created, batch_id = after
            conditions.append(
                or_(
                    batches.c.created_at < created,
                    and_(batches.c.created_at == created, batches.c.id < batch_id),
                )
            )
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches)
                .where(*conditions)
                .order_by(batches.c.created_at.desc(), batches.c.id.desc())
                .limit(limit)
            ).mappings()
            return [_batch_record(row) for row in rows]

    def get_query(self, account: str, ident: str, now: float) -> QueryRecord | None:
        """A live query by schedule id, or by the request id that created it.

        The official SDK polls with the ``request_id`` of the first response as the schedule
        id, so both name the query.
        """
        base = (
            select(*_QUERY_COLUMNS, *_RESULT_COLUMNS)
            .join(batches, batches.c.id == queries.c.batch_id)
            .outerjoin(results, results.c.id == queries.c.result_id)
        )
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    base.where(queries.c.account == account, queries.c.schedule_id == ident)
                )
                .mappings()
                .first()
            )
            if row is None:
                row = (
                    conn.execute(
                        base.where(queries.c.account == account, queries.c.request_id == ident)
                    )
                    .mappings()
                    .first()
                )
        if row is None or self._expired(row["batch_end_time"], now):
            return None
        return self._query_record(row)

    def batch_queries(self, batch_id: str, offset: int, limit: int) -> list[QueryRecord]:
        """The sub-queries of a batch in order, ``limit`` of them after the first ``offset``."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(*_QUERY_COLUMNS, *_RESULT_COLUMNS)
                .join(batches, batches.c.id == queries.c.batch_id)
                .outerjoin(results, results.c.id == queries.c.result_id)
                .where(queries.c.batch_id == batch_id, queries.c.position > offset)
                .order_by(queries.c.position)
                .limit(limit)
            ).mappings()
            return [self._query_record(row) for row in rows]

    def batch_status(self, batch_id: str) -> str | None:
        """The status of a batch, or None once it is gone."""
        with self.db.reading() as conn:
            status: str | None = conn.execute(
                select(batches.c.status).where(batches.c.id == batch_id)
            ).scalar_one_or_none()
        return status

    def workflow(self, account: str) -> tuple[int, int]:
        """(sub-queries waiting, sub-queries running) of a tenant, over all its batches."""
        with self.db.reading() as conn:
            row = conn.execute(
                select(
                    func.coalesce(func.sum(batches.c.n_queued), 0),
                    func.coalesce(func.sum(batches.c.n_running), 0),
                ).where(batches.c.status != BatchStatus.STOPPED, batches.c.account == account)
            ).one()
        return int(row[0]), int(row[1])

    # -- scheduling -------------------------------------------------------------------------

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
                    exclude_account_errors=bool(
                        row["settings"].get("add_exclude_account_errors", False)
                    ),
                    queued=row["n_queued"],
                    running=row["n_running"],
                )
                for row in rows
            ]

    def claim(self, lane: LaneRecord, limit: int, now: float, lease_until: float) -> list[WorkItem]:
        """Take up to ``limit`` scheduled sub-queries of a batch, in order, for an executor."""
        if limit <= 0:
            return []
        candidates = (
            select(queries.c.id)
            .where(
                queries.c.batch_id == lane.batch_id,
                queries.c.status == QueryStatus.SCHEDULED,
            )
            .order_by(queries.c.position)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            candidates = candidates.with_for_update(skip_locked=True)
        with self.db.writing() as conn:
            lock_batches(conn, [lane.batch_id])
            rows = conn.execute(
                update(queries)
                .where(queries.c.id.in_(candidates.scalar_subquery()))
                .values(
                    status=QueryStatus.QUEUED,
                    attempt=queries.c.attempt + 1,
                    lease_expires_at=lease_until,
                )
                .returning(
                    queries.c.id,
                    queries.c.attempt,
                    queries.c.spec,
                    queries.c.fingerprint,
                    queries.c.position,
                )
            ).all()
            if rows:
                conn.execute(
                    update(batches)
                    .where(batches.c.id == lane.batch_id, batches.c.status == BatchStatus.QUEUED)
                    .values(status=BatchStatus.RUNNING, start_time=now)
                )
        rows = sorted(rows, key=lambda row: row.position)
        return [
            WorkItem(
                query_id=row.id,
                batch_id=lane.batch_id,
                account=lane.account,
                attempt=row.attempt,
                spec=row.spec,
                fingerprint=row.fingerprint,
                exclude_account_errors=lane.exclude_account_errors,
            )
            for row in rows
        ]

    def renew_leases(self, items: Iterable[WorkItem], lease_until: float) -> None:
        """Tell the store these runs are alive, so that nobody takes their sub-queries back."""
        params = [{"q_id": i.query_id, "q_attempt": i.attempt, "lease": lease_until} for i in items]
        if params:
            with self.db.writing() as conn:
                conn.execute(_RENEW, params)

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
            for index, outcome in ordered:
                ended[index] = self._apply_outcome(conn, outcome, deltas)
            for index, (item, at) in enumerate(started):
                params = {
                    "q_id": item.query_id,
                    "q_attempt": item.attempt,
                    "at": at,
                    "lease": lease_until,
                }
                changed = conn.execute(_START, params).rowcount
                deltas.move(item.batch_id, QueryStatus.QUEUED, QueryStatus.RUNNING, changed)
                if not changed and item.takeover:
                    changed = conn.execute(_TAKE_OVER, params).rowcount
                began[index] = changed == 1
            _count_finished(conn, [o for o, ok in zip(outcomes, ended, strict=True) if ok])
            stopped = deltas.apply(conn, now)
        return began, ended, stopped

    def _apply_outcome(self, conn: Connection, outcome: Outcome, deltas: Deltas) -> bool:
        result_id = outcome.shared_result_id
        if outcome.result is not None:
            result_id = outcome.result.id
            conn.execute(
                insert(results).values(
                    id=outcome.result.id,
                    total_rows=outcome.result.total_rows,
                    total_columns=outcome.result.total_columns,
                    run_seconds=outcome.result.run_seconds,
                    created_at=outcome.end_time,
                )
            )
        error = outcome.error
        changed = conn.execute(
            _FINISH,
            {
                "q_id": outcome.query_id,
                "q_attempt": outcome.attempt,
                "new_status": outcome.status,
                "end": outcome.end_time,
                "result": result_id,
                "e_code": error.code if error else None,
                "e_message": error.message[:255] if error else None,
                "e_description": (error.description or None) if error else None,
                "excluded": outcome.excluded_accounts,
            },
        ).rowcount
        if outcome.result is not None:
            if changed:
                chunks = [
                    {
                        "r_id": result_id,
                        "seq": seq,
                        "n": n,
                        "payload": payload,
                        "at": outcome.end_time,
                    }
                    for seq, n, payload in outcome.result.last_chunks
                ]
                if chunks:
                    conn.execute(_INSERT_CHUNK, chunks)
            else:
                conn.execute(delete(results).where(results.c.id == result_id))
                conn.execute(delete(result_chunks).where(result_chunks.c.result_id == result_id))
        deltas.move(outcome.batch_id, QueryStatus.RUNNING, outcome.status, changed)
        return changed == 1

    def requeue(self, now: float, *, everything: bool = False) -> int:
        """Put sub-queries whose run went silent (or, at a local start, every claimed one) back.

        They become SCHEDULED again and run anew with a higher attempt number; a run of the
        old attempt that is somehow still going can no longer record anything.
        """
        deltas = Deltas()
        moved = 0
        in_flight = [QueryStatus.QUEUED, QueryStatus.RUNNING]
        lapsed = [] if everything else [queries.c.lease_expires_at < now]
        with self.db.writing() as conn:
            affected = select(queries.c.batch_id).where(queries.c.status.in_(in_flight), *lapsed)
            lock_batches(conn, [row.batch_id for row in conn.execute(affected.distinct())])
            for source in in_flight:
                condition = [queries.c.status == source, *lapsed]
                rows = conn.execute(
                    update(queries)
                    .where(*condition)
                    .values(status=QueryStatus.SCHEDULED, lease_expires_at=None, start_time=None)
                    .returning(queries.c.batch_id)
                ).all()
                for row in rows:
                    deltas.move(row.batch_id, source, QueryStatus.SCHEDULED)
                moved += len(rows)
            deltas.apply(conn, now)
        return moved

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
                    .values(
                        status=QueryStatus.STOPPED,
                        end_time=now,
                        lease_expires_at=None,
                        error_code="QUERY_STOPPED",
                        error_message="Cancelled" if cancelled else "Timed out",
                    )
                ).rowcount
                deltas.move(batch_id, source, QueryStatus.STOPPED, changed)
            deltas.apply(conn, now)
        return in_flight, True

    def timed_out_batches(self, now: float) -> list[str]:
        """Running batches whose ``timeout`` has passed since they started."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches.c.id).where(
                    batches.c.status == BatchStatus.RUNNING,
                    batches.c.start_time + batches.c.timeout_seconds < now,
                )
            )
            return [row.id for row in rows]

    def still_owned(self, items: Sequence[tuple[int, int]]) -> set[int]:
        """Of these (query id, attempt) pairs, the queries that attempt still holds."""
        owned: set[int] = set()
        with self.db.reading() as conn:
            for start in range(0, len(items), 500):
                attempts = dict(items[start : start + 500])
                rows = conn.execute(
                    select(queries.c.id, queries.c.attempt).where(
                        queries.c.id.in_(attempts),
                        queries.c.status.in_([QueryStatus.QUEUED, QueryStatus.RUNNING]),
                    )
                )
                owned.update(row.id for row in rows if attempts[row.id] == row.attempt)
        return owned

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
                .where(queries.c.status.in_([QueryStatus.QUEUED, QueryStatus.RUNNING]))
            )
            return [
                WorkItem(
                    query_id=row.id,
                    batch_id=row.batch_id,
                    account=row.account,
                    attempt=row.attempt,
                    spec=row.spec,
                    fingerprint=row.fingerprint,
                    exclude_account_errors=bool(row.settings.get("add_exclude_account_errors")),
                )
                for row in rows
            ]

    def source_totals(self) -> list[tuple[str, str, int, float]]:
        """(ds_id, status, sub-queries finished, seconds spent) over the whole cluster."""
        with self.db.reading() as conn:
            rows = conn.execute(select(source_stats).order_by(source_stats.c.ds_id))
            return [(r.ds_id, r.status, int(r.finished), float(r.run_seconds)) for r in rows]

    def queue_totals(self) -> tuple[int, int, int]:
        """(sub-queries waiting, running, batches active) over every tenant."""
        with self.db.reading() as conn:
            row = conn.execute(
                select(
                    func.coalesce(func.sum(batches.c.n_queued), 0),
                    func.coalesce(func.sum(batches.c.n_running), 0),
                    func.count(),
                ).where(batches.c.status != BatchStatus.STOPPED)
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    # -- callbacks and expiry ---------------------------------------------------------------

    def stopped_without_callback(self) -> list[BatchRecord]:
        """Stopped batches with a callback URL that has not been called yet."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches).where(
                    batches.c.status == BatchStatus.STOPPED,
                    batches.c.callback_url.is_not(None),
                    batches.c.callback_sent_at.is_(None),
                )
            ).mappings()
            return [_batch_record(row) for row in rows]

    def claim_callback(self, batch_id: str, at: float) -> bool:
        """Take the job of sending a batch's callback; False if another node took it first."""
        with self.db.writing() as conn:
            return bool(
                conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.callback_sent_at.is_(None))
                    .values(callback_sent_at=at)
                ).rowcount
            )

    def sweep(self, now: float, orphan_grace: float) -> int:
        """Delete batches whose results expired, results nobody refers to, and lost chunks."""
        with self.db.writing() as conn:
            expired = conn.execute(
                delete(batches).where(
                    batches.c.status == BatchStatus.STOPPED,
                    batches.c.end_time < now - self.result_ttl,
                )
            ).rowcount
            referenced = select(queries.c.result_id).where(queries.c.result_id.is_not(None))
            unreferenced = select(results.c.id).where(results.c.id.not_in(referenced))
            conn.execute(delete(result_chunks).where(result_chunks.c.result_id.in_(unreferenced)))
            conn.execute(delete(results).where(results.c.id.not_in(referenced)))
            conn.execute(
                delete(result_chunks).where(
                    result_chunks.c.created_at < now - orphan_grace,
                    result_chunks.c.result_id.not_in(select(results.c.id)),
                )
            )
        return expired

    # -- helpers ----------------------------------------------------------------------------

    def _expired(self, end_time: float | None, now: float) -> bool:
        return end_time is not None and end_time + self.result_ttl < now

    def _query_record(self, row: RowMapping) -> QueryRecord:
        result = None
        if row["result_id"] is not None and row["total_rows"] is not None:
            result = ResultRecord(
                id=row["result_id"],
                total_rows=row["total_rows"],
                total_columns=row["total_columns"],
                run_seconds=row["run_seconds"],
                created_at=row["result_created_at"],
            )
        error = None
        if row["error_code"]:
            error = ErrorInfo(
                row["error_code"], row["error_message"] or "", row["error_description"]
            )
        end = row["batch_end_time"]
        return QueryRecord(
            id=row["id"],
            account=row["account"],
            schedule_id=row["schedule_id"],
            batch_id=row["batch_id"],
            batch_kind=row["kind"],
            batch_settings=row["batch_settings"],
            position=row["position"],
            status=QueryStatus(row["status"]),
            ds_id=row["ds_id"],
            spec=row["spec"],
            fingerprint=row["fingerprint"],
            request_id=row["request_id"],
            created_at=row["created_at"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            expires_at=None if end is None else end + self.result_ttl,
            attempt=row["attempt"],
            error=error,
            excluded_accounts=row["excluded_accounts"],
            result=result,
            cache_used=bool(row["cache_used"]),
            cache_time=row["cache_time"],
        )


def _count_finished(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """Add applied outcomes to the per-source counters (one statement per source and status)."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for outcome in outcomes:
        total = totals[(outcome.ds_id, outcome.status.value)]
        total[0] += 1
        total[1] += outcome.result.run_seconds if outcome.result else 0.0
    for (ds_id, status), (finished, seconds) in sorted(totals.items()):
        changed = conn.execute(
            update(source_stats)
            .where(source_stats.c.ds_id == ds_id, source_stats.c.status == status)
            .values(
                finished=source_stats.c.finished + int(finished),
                run_seconds=source_stats.c.run_seconds + seconds,
            )
        ).rowcount
        if not changed:
            conn.execute(
                insert(source_stats).values(
                    ds_id=ds_id, status=status, finished=int(finished), run_seconds=seconds
                )
            )


def new_result_id() -> str:
    """A fresh id for the rows of one run."""
    return secrets.token_hex(16)


def is_duplicate(exc: IntegrityError) -> bool:
    """Whether an insert failed on a unique constraint (someone created the row first)."""
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate" in text


def _batch_record(row: RowMapping) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        kind=row["kind"],
        account=row["account"],
        key_id=row["key_id"],
        status=BatchStatus(row["status"]),
        settings=row["settings"],
        query_concurrency=row["query_concurrency"],
        timeout_seconds=row["timeout_seconds"],
        created_at=row["created_at"],
        schedule_time=row["schedule_time"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        cancel_time=row["cancel_time"],
        query_amount=row["query_amount"],
        counts=Counts(
            queued=row["n_queued"],
            running=row["n_running"],
            success=row["n_success"],
            failure=row["n_failure"],
            stopped=row["n_stopped"],
        ),
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        callback_url=row["callback_url"],
        callback_sent_at=row["callback_sent_at"],
    )


_START = (
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
_TAKE_OVER = (
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        queries.c.status == QueryStatus.RUNNING,
    )
    .values(start_time=bindparam("at"), lease_expires_at=bindparam("lease"))
)

# No IN here: an executemany statement cannot expand a list parameter.
_RENEW = (
    update(queries)
    .where(
        queries.c.id == bindparam("q_id"),
        queries.c.attempt == bindparam("q_attempt"),
        or_(queries.c.status == QueryStatus.QUEUED, queries.c.status == QueryStatus.RUNNING),
    )
    .values(lease_expires_at=bindparam("lease"))
)

_FINISH = (
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

_INSERT_CHUNK = insert(result_chunks).values(
    result_id=bindparam("r_id"),
    seq=bindparam("seq"),
    row_count=bindparam("n"),
    payload=bindparam("payload"),
    created_at=bindparam("at"),
)
