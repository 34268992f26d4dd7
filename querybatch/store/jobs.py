"""Batches and queries: creating them and reading them.

Status changes live in runs.py, counters in counters.py, expiry and callbacks in upkeep.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)

from querybatch.domain.batch import BatchSettings, PlannedQueries, PlannedQuery
from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.store.codec import StoredSettings
from querybatch.store.database import Database
from querybatch.store.prepared import PreparedInsert, PreparedRead
from querybatch.store.records import (
    BatchRecord,
    Counts,
    ErrorInfo,
    PartlyStored,
    QueryRecord,
    ResultRecord,
    SubQueryState,
)
from querybatch.store.repository import point_reads, reads, writes
from querybatch.store.runs import stopped_values
from querybatch.store.tables import CACHEABLE_QUERIES, batches, queries, results

_QUERY_COLUMNS = [*queries.c, batches.c.kind, batches.c.settings.label("batch_settings")]
_QUERY_COLUMNS += [batches.c.end_time.label("batch_end_time")]
_RESULT_COLUMNS = [
    results.c.total_rows,
    results.c.total_columns,
    results.c.run_seconds,
    results.c.created_at.label("result_created_at"),
]


# The hot reads (status polling), built once: SQLAlchemy then only binds the parameters.
_GET_BATCH = select(batches).where(
    batches.c.id == bindparam("b_id"),
    batches.c.account == bindparam("account"),
    batches.c.kind == "batch",
)
_QUERY_BASE = (
    select(*_QUERY_COLUMNS, *_RESULT_COLUMNS)
    .join(batches, batches.c.id == queries.c.batch_id)
    .outerjoin(results, results.c.id == queries.c.result_id)
)
_QUERY_BY_SCHEDULE_ID = PreparedRead(
    _QUERY_BASE.where(
        queries.c.account == bindparam("account"), queries.c.schedule_id == bindparam("ident")
    )
)
_QUERY_BY_REQUEST_ID = PreparedRead(
    _QUERY_BASE.where(
        queries.c.account == bindparam("account"), queries.c.request_id == bindparam("ident")
    )
)
# A status page up to this size (a poller's, 100 by default) is a point read: on SQLite it
# runs on the event loop, where it costs less than the hop to a reader thread and back, and
# this bound keeps it short. Larger pages are read on a reader thread.
POINT_PAGE_ROWS = 100
# What a status page shows of a sub-query, in the order :func:`sub_query_state` takes.
BATCH_PAGE_COLUMNS = (
    queries.c.id,
    queries.c.schedule_id,
    queries.c.status,
    queries.c.ds_id,
    type_coerce(queries.c.spec, Text).label("spec_text"),
    queries.c.start_time,
    queries.c.end_time,
    queries.c.error_code,
    queries.c.error_message,
    queries.c.error_description,
    queries.c.excluded_accounts,
    results.c.total_rows,
)
_BATCH_PAGE = PreparedRead(
    select(*BATCH_PAGE_COLUMNS)
    .outerjoin(results, results.c.id == queries.c.result_id)
    .where(queries.c.batch_id == bindparam("b_id"), queries.c.position > bindparam("offset"))
    .order_by(queries.c.position)
    .limit(bindparam("limit"))
)
# Sub-queries are stored this many at a time (one transaction for the whole batch still).
INSERT_SLICE = 5000
_INSERT_QUERIES = PreparedInsert(
    queries,
    [
        "account",
        "schedule_id",
        "batch_id",
        "position",
        "status",
        "ds_id",
        "spec",
        "fingerprint",
        "request_id",
        "created_at",
        "start_time",
        "end_time",
        "attempt",
        "result_id",
        "cache_used",
        "cache_time",
    ],
)
_BATCH_STATUS = select(batches.c.status).where(batches.c.id == bindparam("b_id"))
_STORED_THROUGH = PreparedRead(
    select(batches.c.n_stored).where(
        batches.c.id == bindparam("b_id"),
        batches.c.account == bindparam("account"),
        batches.c.n_stored.is_not(None),
        batches.c.query_amount >= bindparam("holding"),
    )
)
_WORKFLOW = select(
    func.coalesce(func.sum(batches.c.n_queued), 0),
    func.coalesce(func.sum(batches.c.n_running), 0),
).where(batches.c.status != BatchStatus.STOPPED, batches.c.account == bindparam("account"))


class JobStore:
    """The repository of batches and queries."""

    def __init__(self, db: Database, result_ttl: float) -> None:
        self.db = db
        self.result_ttl = result_ttl

    @writes
    def create_batch(
        self,
        *,
        batch_id: str,
        kind: str,
        account: str,
        key_id: str,
        settings: BatchSettings | None,
        columns: Sequence[str] = (),
        query_concurrency: int,
        timeout_seconds: int,
        schedule_time: float,
        subqueries: PlannedQueries,
        now: float,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        callback_url: str | None = None,
        request_id: str | None = None,
        cached: tuple[str, float] | None = None,
        sequence: str | None = None,
        plan: str | None = None,
        stored_now: int | None = None,
    ) -> BatchRecord:
        """Store a batch and its sub-queries, all or nothing.

        ``settings`` is None for a data request's hidden one-query batch. ``sequence`` names
        the sequence the batch runs in (see ``StoredSettings``).

        ``cached`` (result id, cache time) stores a one-query batch already answered from the
        cache of an identical earlier query.

        With a ``plan`` (what the sub-queries are made from), only the first ``stored_now``
        sub-queries are stored with the batch; :meth:`store_more` stores the rest.
        """
        status = QueryStatus.SUCCESS if cached else QueryStatus.SCHEDULED
        to_store = len(subqueries)
        if plan is not None and stored_now is not None:
            to_store = min(stored_now, to_store)
        deferred = to_store < len(subqueries)
        with self.db.writing() as conn:
            conn.execute(
                insert(batches).values(
                    id=batch_id,
                    kind=kind,
                    account=account,
                    key_id=key_id,
                    status=BatchStatus.STOPPED if cached else BatchStatus.QUEUED,
                    settings=StoredSettings(settings, tuple(columns), sequence),
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
                    n_stored=to_store if deferred else None,
                    plan=plan if deferred else None,
                )
            )
            done = (now, now, cached[0], True, cached[1]) if cached else (None,) * 5
            _insert_queries(
                conn, account, batch_id, subqueries, 0, to_store, status, now, request_id, done
            )
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().one()
        return batch_record(row)

    @writes
    def store_more(
        self, batch_id: str, after: int, subqueries: Iterator[PlannedQuery], most: int
    ) -> int | None:
        """Store the next sub-queries of a batch stored in part: those after position
        ``after``, read from ``subqueries`` (which must begin there), at most ``most``.

        Returns how many of the batch's sub-queries are stored now, or None when the store
        does not hold the batch at ``after`` any more (another node stored them, or it is
        gone): the caller lets it be. A batch that stopped meanwhile gets them as stopped
        sub-queries (its counters already count them so).
        """
        with self.db.writing() as conn:
            batch = conn.execute(
                select(
                    batches.c.account,
                    batches.c.status,
                    batches.c.n_stored,
                    batches.c.query_amount,
                    batches.c.created_at,
                    batches.c.end_time,
                    batches.c.cancel_time,
                )
                .where(batches.c.id == batch_id)
                .with_for_update()
            ).one_or_none()
            if batch is None or batch.n_stored != after:
                return None
            upto: int = min(after + most, batch.query_amount)
            _insert_queries(
                conn,
                batch.account,
                batch_id,
                subqueries,
                after,
                upto - after,
                QueryStatus.SCHEDULED,
                batch.created_at,  # as if stored with the batch
            )
            if batch.status == BatchStatus.STOPPED:
                conn.execute(
                    update(queries)
                    .where(
                        queries.c.batch_id == batch_id,
                        queries.c.position > after,
                        queries.c.position <= upto,
                    )
                    .values(stopped_values(batch.end_time, cancelled=bool(batch.cancel_time)))
                )
            done = upto >= batch.query_amount
            left = {"n_stored": None, "plan": None} if done else {"n_stored": upto}
            conn.execute(update(batches).where(batches.c.id == batch_id).values(left))
        return upto

    @point_reads
    def stored_through(self, account: str, batch_id: str, holding: int = 1) -> int | None:
        """How many of a tenant's batch's sub-queries are stored, if not all of them yet
        (None: all are, there is no such batch, or it holds fewer than ``holding``)."""
        params = {"account": account, "b_id": batch_id, "holding": holding}
        with self.db.point_reading() as conn:
            rows = _STORED_THROUGH.rows(conn, params)
        return int(rows[0][0]) if rows else None

    @reads
    def stored_in_part(self) -> list[PartlyStored]:
        """Every batch whose sub-queries are not all stored yet."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(batches.c.id, batches.c.query_amount, batches.c.n_stored).where(
                    batches.c.n_stored.is_not(None)
                )
            ).all()
        return [PartlyStored(row.id, row.query_amount, row.n_stored) for row in rows]

    @reads
    def plan_of(self, batch_id: str) -> tuple[BatchSettings, str] | None:
        """The settings and plan of a batch not all stored yet (None: it is, or is gone)."""
        with self.db.reading() as conn:
            row = conn.execute(
                select(batches.c.settings, batches.c.plan).where(
                    batches.c.id == batch_id, batches.c.n_stored.is_not(None)
                )
            ).one_or_none()
        return None if row is None else (_settings(row.settings), row.plan)

    @reads
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
                    # As the partial index has it: bound values would not let it be used.
                    text(CACHEABLE_QUERIES),
                    queries.c.account == account,
                    queries.c.end_time >= since,
                    queries.c.result_id.is_not(None),
                    batches.c.end_time >= now - self.result_ttl,
                )
                .order_by(queries.c.end_time.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.result_id, row.end_time)

    @point_reads
    def get_batch(self, account: str, batch_id: str, now: float) -> BatchRecord | None:
        """A live query batch of this tenant, or None (unknown, another tenant's, expired)."""
        with self.db.point_reading() as conn:
            row = (
                conn.execute(_GET_BATCH, {"b_id": batch_id, "account": account}).mappings().first()
            )
        if row is None or self._expired(row["end_time"], now):
            return None
        return batch_record(row)

    @reads
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
        return None if row is None else batch_record(row)

    @reads
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
            return [batch_record(row) for row in rows]

    @point_reads
    def get_query(self, account: str, ident: str, now: float) -> QueryRecord | None:
        """A live query by schedule id, or by the request id that created it.

        The official SDK polls with the ``request_id`` of the first response as the schedule
        id, so both name the query.
        """
        params = {"account": account, "ident": ident}
        with self.db.point_reading() as conn:
            rows = _QUERY_BY_SCHEDULE_ID.mappings(conn, params)
            if not rows:
                rows = _QUERY_BY_REQUEST_ID.mappings(conn, params)
        if not rows or self._expired(rows[0]["batch_end_time"], now):
            return None
        return self._query_record(rows[0])

    @reads
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

    @reads
    def batch_page(self, batch_id: str, offset: int, limit: int) -> list[SubQueryState]:
        """What a status page shows of a batch's sub-queries in order, ``limit`` of them
        after the first ``offset`` (a poller's page of up to :data:`POINT_PAGE_ROWS` is read
        with ``batch_page.point``)."""
        with self.db.point_reading() as conn:
            rows = _BATCH_PAGE.rows(conn, {"b_id": batch_id, "offset": offset, "limit": limit})
        return [sub_query_state(*row) for row in rows]

    @reads
    def batch_status(self, batch_id: str) -> str | None:
        """The status of a batch, or None once it is gone."""
        with self.db.reading() as conn:
            status: str | None = conn.execute(
                _BATCH_STATUS, {"b_id": batch_id}
            ).scalar_one_or_none()
        return status

    @reads
    def workflow(self, account: str) -> tuple[int, int]:
        """(sub-queries waiting, sub-queries running) of a tenant, over all its batches."""
        with self.db.reading() as conn:
            row = conn.execute(_WORKFLOW, {"account": account}).one()
        return int(row[0]), int(row[1])

    def _expired(self, end_time: float | None, now: float) -> bool:
        return end_time is not None and end_time + self.result_ttl < now

    def _query_record(self, row: Mapping[Any, Any]) -> QueryRecord:
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
            batch_settings=_settings(row["batch_settings"]),
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


def sub_query_state(
    query_id: int,
    schedule_id: str,
    status: str,
    ds_id: str,
    spec_text: str,
    start_time: float | None,
    end_time: float | None,
    error_code: str | None,
    error_message: str | None,
    error_description: str | None,
    excluded_accounts: dict[str, str] | None,
    total_rows: int | None,
) -> SubQueryState:
    """A row of ``_BATCH_PAGE`` (its columns in order) as the status page's record."""
    error = None
    if error_code:
        error = ErrorInfo(error_code, error_message or "", error_description)
    return SubQueryState(
        query_id,
        schedule_id,
        _STATUSES[status],
        ds_id,
        spec_text,
        start_time,
        end_time,
        error,
        excluded_accounts,
        total_rows,
    )


_STATUSES = {status.value: status for status in QueryStatus}


def _insert_queries(
    conn: Connection,
    account: str,
    batch_id: str,
    subqueries: Iterable[PlannedQuery],
    after: int,
    count: int,
    status: QueryStatus,
    created_at: float,
    request_id: str | None = None,
    done: tuple[float | None, float | None, str | None, bool | None, float | None] = (None,) * 5,
) -> None:
    """Insert the next ``count`` of ``subqueries`` as the batch's sub-queries after position
    ``after``, a slice of ``_INSERT_QUERIES`` at a time. ``done`` is (start time, end time,
    result id, cache used, cache time) of sub-queries answered from the cache."""
    start_time, end_time, result_id, cache_used, cache_time = done
    from_cache = bool(cache_used)
    rows = (
        (
            account,
            planned.schedule_id,
            batch_id,
            position,
            status.value,
            planned.base.ds_id,
            planned.spec_text,
            planned.fingerprint,
            request_id,
            created_at,
            start_time,
            end_time,
            0,
            result_id,
            from_cache,
            cache_time,
        )
        for position, planned in enumerate(itertools.islice(subqueries, count), after + 1)
    )
    stored = 0
    while piece := list(itertools.islice(rows, INSERT_SLICE)):
        _INSERT_QUERIES.executemany(conn, piece)
        stored += len(piece)
    if stored != count:
        raise ValueError(f"{count} sub-queries planned, {stored} made")


def batch_record(row: RowMapping) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        kind=row["kind"],
        account=row["account"],
        key_id=row["key_id"],
        status=BatchStatus(row["status"]),
        settings=_settings(row["settings"]),
        columns=row["settings"].columns,
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
        stored=row["n_stored"],
    )


def _settings(stored: StoredSettings) -> BatchSettings:
    return stored.settings or BatchSettings()
