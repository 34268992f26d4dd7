"""Transfer runs: one data date of a transfer, its query batch, and the load that follows.

A run goes CREATED -> RUNNING (its batch made) -> LOADING (the batch stopped, its rows on
their way to the destination) -> COMPLETED | FAILED; each step is a conditional update, so a
step taken twice (two nodes, a retried write) is taken once. Runs are made together with
the transfer's next due time, in one transaction that only the first node to see the old
due time wins; the unique (transfer, data date, run key) constraint backs that up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from querybatch.domain.status import BatchStatus
from querybatch.store.database import Database
from querybatch.store.repository import reads, writes
from querybatch.store.tables import backfills, batches, transfer_runs, transfers

RunStatus = Literal["CREATED", "RUNNING", "LOADING", "COMPLETED", "FAILED", "CANCELLED"]
RunType = Literal["Recurring", "Backfill"]
SortField = Literal["created_time", "data_date", "ended_time"]
ERROR_CHARS = 2000
BACKFILL_LOOKAHEAD = 1000  # backfills with runs to start a pass looks at
_SORT_COLUMNS = {
    "created_time": transfer_runs.c.created_at,
    "data_date": transfer_runs.c.data_date,
    "ended_time": transfer_runs.c.ended_at,
}


@dataclass(frozen=True, slots=True)
class TransferRunRecord:
    """A stored transfer run."""

    id: int
    account: str
    transfer_id: int
    data_date: date
    run_type: RunType
    run_key: str
    backfill_id: int | None
    status: RunStatus
    batch_id: str | None
    query_offset: int
    """The run's queries are the batch's after this position (0: from its first)."""
    query_count: int | None
    """How many queries of the batch are the run's; None: every query from the offset (a
    run started before runs shared batches had a batch of its own)."""
    rows_loaded: int | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class RunQueries:
    """A run's queries: ``count`` of its batch's, those after position ``offset``."""

    batch_id: str
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """Which of a transfer's runs a list shows, in which order, and which page of them."""

    first_date: date
    last_date: date
    issues_only: bool = False
    sort_field: SortField = "created_time"
    descending: bool = True
    limit: int = 100
    offset: int = 0


def _record(row: RowMapping) -> TransferRunRecord:
    return TransferRunRecord(
        id=row["id"],
        account=row["account"],
        transfer_id=row["transfer_id"],
        data_date=date.fromisoformat(row["data_date"]),
        run_type=row["run_type"],
        run_key=row["run_key"],
        backfill_id=row["backfill_id"],
        status=row["status"],
        batch_id=row["batch_id"],
        query_offset=row["query_offset"] or 0,
        query_count=row["query_count"],
        rows_loaded=row["rows_loaded"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        error_message=row["error_message"],
    )


def _accounts_of(config: dict[str, Any] | None) -> int:
    """How many sub-queries a run of a transfer with this configuration makes (at least 1)."""
    accounts = (config or {}).get("accounts", [])
    return max(1, len({a.get("account_id") for a in accounts}))


class TransferRunStore:
    """The repository of transfer runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the scheduler's steps ----------------------------------------------------------------

    @reads
    def due_transfers(self, now: float, limit: int) -> list[tuple[int, str, float]]:
        """(id, account, due time) of active transfers due at ``now``, the most overdue first."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(transfers.c.id, transfers.c.account, transfers.c.next_run_at)
                .where(transfers.c.state == "active", transfers.c.next_run_at <= now)
                .order_by(transfers.c.next_run_at, transfers.c.id)
                .limit(limit)
            ).all()
        return [(row[0], row[1], row[2]) for row in rows]

    @writes
    def create_due(
        self,
        transfer_id: int,
        due_at: float,
        next_run_at: float | None,
        data_dates: Sequence[date],
        now: float,
    ) -> list[TransferRunRecord]:
        """Make the Recurring runs of the transfer's run due at ``due_at`` and move its due
        time on to ``next_run_at``; none when another node (or an update, a pause) moved it
        first."""
        with self.db.writing() as conn:
            moved = conn.execute(
                update(transfers)
                .where(
                    transfers.c.id == transfer_id,
                    transfers.c.state == "active",
                    transfers.c.next_run_at == due_at,
                )
                .values(next_run_at=next_run_at)
                .returning(transfers.c.account)
            ).one_or_none()
            if moved is None:
                return []
            key = f"recurring:{int(due_at)}"
            return _insert_runs(conn, moved[0], transfer_id, data_dates, "Recurring", key, now)

    @reads
    def to_load(self, limit: int) -> list[TransferRunRecord]:
        """RUNNING runs whose query batch has stopped (or is gone), oldest first: the ones a
        pass can load. Runs whose batches still run are not among them, so however many
        of those there are, a run whose batch is done is never kept waiting behind them."""
        runs = transfer_runs.c
        with self.db.reading() as conn:
            rows = conn.execute(
                select(transfer_runs)
                .select_from(transfer_runs.outerjoin(batches, batches.c.id == runs.batch_id))
                .where(
                    runs.status == "RUNNING",
                    runs.batch_id.is_not(None),
                    or_(batches.c.id.is_(None), batches.c.status == BatchStatus.STOPPED.value),
                )
                .order_by(runs.id)
                .limit(limit)
            ).mappings()
            return [_record(row) for row in rows]

    @reads
    def startable(
        self, limit: int, queries_per_backfill: int, loading_per_backfill: int
    ) -> list[TransferRunRecord]:
        """CREATED runs to start now, oldest first: every Recurring one (up to ``limit``),
        then of each backfill as many as keep at most ``queries_per_backfill`` of its
        sub-queries (a run has one per account of its transfer) in runs whose batches run,
        at least one run, while fewer than ``loading_per_backfill`` of its runs wait for
        their load. The recurring runs come first; a backfill fills the tenant's limits as
        one batch would, without holding every run of a long range at once; its runs that
        wait to load leave their sub-queries' room to the next ones (their loads go in
        groups), up to a bound, so a slow destination holds the backfill back in the end."""
        runs = transfer_runs.c
        with self.db.reading() as conn:
            recurring = conn.execute(
                select(transfer_runs)
                .where(runs.status == "CREATED", runs.backfill_id.is_(None))
                .order_by(runs.id)
                .limit(limit)
            ).mappings()
            chosen = [_record(row) for row in recurring]
            running: dict[int, int] = {}
            loading: dict[int, int] = {}
            for backfill_id, status, count in conn.execute(
                select(runs.backfill_id, runs.status, func.count())
                .where(runs.status.in_(("RUNNING", "LOADING")), runs.backfill_id.is_not(None))
                .group_by(runs.backfill_id, runs.status)
            ):
                (running if status == "RUNNING" else loading)[backfill_id] = count
            # Each backfill with runs to start, its transfer's configuration read once (a
            # year's backfill read and decoded it with every one of its runs, each pass).
            backlog = conn.execute(
                select(runs.backfill_id, transfers.c.config)
                .join(transfers, transfers.c.id == runs.transfer_id)
                .where(runs.status == "CREATED", runs.backfill_id.is_not(None))
                .group_by(runs.backfill_id, transfers.c.id)
                .order_by(func.min(runs.id))
                .limit(BACKFILL_LOOKAHEAD)
            ).all()
            for backfill_id, config in backlog:
                if len(chosen) >= limit:
                    break
                room = max(1, queries_per_backfill // _accounts_of(config))
                room = min(room - running.get(backfill_id, 0), limit - len(chosen))
                if room <= 0 or loading.get(backfill_id, 0) >= loading_per_backfill:
                    continue
                chosen.extend(
                    _record(row)
                    for row in conn.execute(
                        select(transfer_runs)
                        .where(runs.backfill_id == backfill_id, runs.status == "CREATED")
                        .order_by(runs.id)
                        .limit(room)
                    ).mappings()
                )
        return chosen

    @writes
    def mark_started(self, started: Mapping[int, RunQueries], now: float) -> set[int]:
        """CREATED -> RUNNING, each run (id) with its queries (its batch, shared or its own),
        in one transaction; the runs for which this call took the step.

        The runs still CREATED are read (and, on PostgreSQL, locked: a cancel waits, then
        finds them started) first, and all of them are stepped with one statement (a year's
        backfill stepped its runs one statement each, a tenth of its runner's time)."""
        if not started:
            return set()
        runs = transfer_runs.c
        with self.db.writing() as conn:
            stepped = set(
                conn.execute(
                    select(runs.id)
                    .where(runs.id.in_(list(started)), runs.status == "CREATED")
                    .with_for_update()
                ).scalars()
            )
            if stepped:
                conn.execute(
                    update(transfer_runs)
                    .where(runs.id == bindparam("run_id"), runs.status == "CREATED")
                    .values(
                        status="RUNNING",
                        batch_id=bindparam("run_batch"),
                        query_offset=bindparam("run_offset"),
                        query_count=bindparam("run_count"),
                        started_at=now,
                    ),
                    [
                        {
                            "run_id": run_id,
                            "run_batch": started[run_id].batch_id,
                            "run_offset": started[run_id].offset,
                            "run_count": started[run_id].count,
                        }
                        for run_id in sorted(stepped)
                    ],
                )
        return stepped

    @writes
    def mark_loading(self, run_ids: Sequence[int]) -> set[int]:
        """RUNNING -> LOADING (their batches stopped), in one statement; the runs for which
        this call took the step."""
        if not run_ids:
            return set()
        with self.db.writing() as conn:
            rows = conn.execute(
                update(transfer_runs)
                .where(transfer_runs.c.id.in_(run_ids), transfer_runs.c.status == "RUNNING")
                .values(status="LOADING")
                .returning(transfer_runs.c.id)
            ).all()
        return {row[0] for row in rows}

    @writes
    def finish(
        self, run_id: int, status: RunStatus, rows: int | None, error: str | None, now: float
    ) -> bool:
        """CREATED, RUNNING or LOADING -> COMPLETED or FAILED, with the rows loaded and
        the error; whether this call took the step."""
        with self.db.writing() as conn:
            result = conn.execute(
                update(transfer_runs)
                .where(
                    transfer_runs.c.id == run_id,
                    transfer_runs.c.status.in_(("CREATED", "RUNNING", "LOADING")),
                )
                .values(
                    status=status,
                    rows_loaded=rows,
                    error_message=None if error is None else error[:ERROR_CHARS],
                    ended_at=now,
                )
            )
        return bool(result.rowcount)

    @writes
    def complete(self, rows: Mapping[int, int], now: float) -> None:
        """LOADING -> COMPLETED, each run (id) with its rows loaded, in one transaction (the
        runs of one load) and one statement."""
        if not rows:
            return
        runs = transfer_runs.c
        with self.db.writing() as conn:
            conn.execute(
                update(transfer_runs)
                .where(runs.id == bindparam("run_id"), runs.status == "LOADING")
                .values(status="COMPLETED", rows_loaded=bindparam("run_rows"), ended_at=now),
                [{"run_id": run_id, "run_rows": count} for run_id, count in rows.items()],
            )

    @writes
    def requeue_loads(self) -> int:
        """LOADING -> RUNNING for every run: loads a former leader (or this process before a
        restart) left unfinished are taken again (a load replaces its slice: safe twice)."""
        with self.db.writing() as conn:
            result = conn.execute(
                update(transfer_runs)
                .where(transfer_runs.c.status == "LOADING")
                .values(status="RUNNING")
            )
        return int(result.rowcount)

    # -- what the API reads -------------------------------------------------------------------

    @reads
    def list_for(self, account: str, transfer_id: int, query: RunsQuery) -> list[TransferRunRecord]:
        """A page of the account's runs of one transfer whose data dates are in range."""
        column = _SORT_COLUMNS[query.sort_field]
        order = (
            (column.desc(), transfer_runs.c.id.desc())
            if query.descending
            else (column, transfer_runs.c.id)
        )
        conditions = [
            transfer_runs.c.account == account,
            transfer_runs.c.transfer_id == transfer_id,
            transfer_runs.c.data_date >= query.first_date.isoformat(),
            transfer_runs.c.data_date <= query.last_date.isoformat(),
        ]
        if query.issues_only:
            conditions.append(transfer_runs.c.status == "FAILED")
        with self.db.reading() as conn:
            rows = conn.execute(
                select(transfer_runs)
                .where(and_(*conditions))
                .order_by(*order)
                .limit(query.limit)
                .offset(query.offset)
            ).mappings()
            return [_record(row) for row in rows]

    @reads
    def get(self, account: str, run_id: int) -> TransferRunRecord | None:
        """One of the account's runs, or None (another account's is None too)."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(transfer_runs).where(
                        transfer_runs.c.account == account, transfer_runs.c.id == run_id
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)


def _insert_runs(
    conn: Connection,
    account: str,
    transfer_id: int,
    data_dates: Sequence[date],
    run_type: RunType,
    key: str,
    now: float,
    backfill_id: int | None = None,
) -> list[TransferRunRecord]:
    """Insert the runs not made yet for these data dates and ``key``; the ones made now."""
    texts = [d.isoformat() for d in data_dates]
    existing = (
        set(
            conn.execute(
                select(transfer_runs.c.data_date).where(
                    transfer_runs.c.transfer_id == transfer_id,
                    transfer_runs.c.run_key == key,
                    or_(*(transfer_runs.c.data_date == t for t in texts)),
                )
            ).scalars()
        )
        if texts
        else set()
    )
    made = []
    for text in texts:
        if text in existing:
            continue
        row = (
            conn.execute(
                insert(transfer_runs)
                .values(
                    account=account,
                    transfer_id=transfer_id,
                    data_date=text,
                    run_type=run_type,
                    run_key=key,
                    backfill_id=backfill_id,
                    status="CREATED",
                    created_at=now,
                )
                .returning(*transfer_runs.c)
            )
            .mappings()
            .one()
        )
        made.append(_record(row))
    return made


def delete_runs_of(conn: Connection, account: str, transfer_id: int) -> None:
    """Remove a transfer's runs and backfills (in the transaction that removes it)."""
    conn.execute(
        delete(backfills).where(
            backfills.c.account == account, backfills.c.transfer_id == transfer_id
        )
    )
    conn.execute(
        delete(transfer_runs).where(
            transfer_runs.c.account == account, transfer_runs.c.transfer_id == transfer_id
        )
    )
