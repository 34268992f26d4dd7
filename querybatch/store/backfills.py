"""Backfills: a range of data dates of a transfer, one Backfill run per date.

A backfill and all its runs are made in one transaction; its status and counters are read
from its runs, so they never disagree with them. A cancel marks the backfill and turns the
runs that have not started into CANCELLED ones in one transaction; runs under way finish.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from querybatch.store.database import Database
from querybatch.store.prepared import PreparedRead
from querybatch.store.repository import point_reads, reads, writes
from querybatch.store.tables import backfills, transfer_runs, transfers

BackfillStatus = Literal["CREATED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
ACTIVE = ("CREATED", "RUNNING", "LOADING")
MAX_ERRORS = 100  # failed runs an error report names
MAX_LISTED = 1000  # incomplete backfills a list shows


@dataclass(frozen=True, slots=True)
class BackfillState:
    """A backfill, the counts of its runs by status, and its failed runs' errors."""

    id: int
    account: str
    transfer_id: int
    range_start: date
    range_end: date
    created_at: float
    cancelled_at: float | None
    counts: dict[str, int]
    started_at: float | None
    ended_at: float | None
    errors: tuple[tuple[date, str], ...]

    @property
    def total(self) -> int:
        """All its runs."""
        return sum(self.counts.values())

    @property
    def status(self) -> BackfillStatus:
        """CANCELLED once cancelled; else CREATED until a run starts, RUNNING while runs
        remain, then COMPLETED, or FAILED when any run failed."""
        if self.cancelled_at is not None:
            return "CANCELLED"
        if not any(self.counts.get(s) for s in ACTIVE):
            return "FAILED" if self.counts.get("FAILED") else "COMPLETED"
        if self.counts.get("CREATED", 0) == self.total:
            return "CREATED"
        return "RUNNING"


class BackfillStore:
    """The repository of backfills, always read and written within one account."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @writes
    def create(
        self, account: str, transfer_id: int, first: date, last: date, now: float
    ) -> BackfillState | Literal["busy"] | None:
        """A new backfill and its runs; None when the transfer is not the account's,
        ``"busy"`` while another backfill of the transfer has runs to go."""
        with self.db.writing() as conn:
            found = conn.execute(
                select(transfers.c.id).where(
                    transfers.c.account == account, transfers.c.id == transfer_id
                )
            ).first()
            if found is None:
                return None
            going = conn.execute(
                select(transfer_runs.c.id)
                .where(
                    transfer_runs.c.transfer_id == transfer_id,
                    transfer_runs.c.backfill_id.is_not(None),
                    transfer_runs.c.status.in_(ACTIVE),
                )
                .limit(1)
            ).first()
            if going is not None:
                return "busy"
            backfill_id = conn.execute(
                insert(backfills)
                .values(
                    account=account,
                    transfer_id=transfer_id,
                    range_start=first.isoformat(),
                    range_end=last.isoformat(),
                    created_at=now,
                )
                .returning(backfills.c.id)
            ).scalar_one()
            days = (last - first).days + 1
            conn.execute(
                insert(transfer_runs),
                [
                    {
                        "account": account,
                        "transfer_id": transfer_id,
                        "data_date": (first + timedelta(days=n)).isoformat(),
                        "run_type": "Backfill",
                        "run_key": f"backfill:{backfill_id}",
                        "backfill_id": backfill_id,
                        "status": "CREATED",
                        "created_at": now,
                    }
                    for n in range(days)
                ],
            )
            return _state(conn, _row(conn, account, backfill_id))

    @point_reads
    def get(self, account: str, backfill_id: int) -> BackfillState | None:
        """One of the account's backfills, or None (another account's is None too). Clients
        poll it while it runs: a read by key and a count of its runs by status (through
        their index), on the event loop of a SQLite server."""
        with self.db.point_reading() as conn:
            row = _row(conn, account, backfill_id)
            return None if row is None else _state(conn, row)

    @reads
    def latest(self, account: str, transfer_id: int) -> BackfillState | None:
        """The transfer's newest backfill, or None."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(backfills)
                    .where(backfills.c.account == account, backfills.c.transfer_id == transfer_id)
                    .order_by(backfills.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .one_or_none()
            )
            return None if row is None else _state(conn, row)

    @reads
    def incomplete(self, account: str) -> list[BackfillState]:
        """The account's backfills neither completed nor cancelled, newest first."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(backfills)
                .where(backfills.c.account == account, backfills.c.cancelled_at.is_(None))
                .order_by(backfills.c.id.desc())
                .limit(MAX_LISTED)
            ).mappings()
            states = [_state(conn, row) for row in list(rows)]
        return [s for s in states if s.status != "COMPLETED"]

    @writes
    def cancel(self, account: str, backfill_id: int, now: float) -> BackfillState | None:
        """Cancel a backfill: its runs not started yet never start (one that has ended is
        left as it is); None if not found."""
        with self.db.writing() as conn:
            row = _row(conn, account, backfill_id)
            if row is None:
                return None
            if row["cancelled_at"] is None and _state(conn, row).status in ("CREATED", "RUNNING"):
                conn.execute(
                    update(backfills).where(backfills.c.id == backfill_id).values(cancelled_at=now)
                )
                conn.execute(
                    update(transfer_runs)
                    .where(
                        transfer_runs.c.backfill_id == backfill_id,
                        transfer_runs.c.status == "CREATED",
                    )
                    .values(status="CANCELLED", ended_at=now)
                )
            return _state(conn, _row(conn, account, backfill_id))


_BACKFILL = PreparedRead(
    select(backfills).where(
        backfills.c.account == bindparam("account"), backfills.c.id == bindparam("backfill_id")
    )
)
_RUN_COUNTS = PreparedRead(
    select(
        transfer_runs.c.status,
        func.count(),
        func.min(transfer_runs.c.started_at),
        func.max(transfer_runs.c.ended_at),
    )
    .where(transfer_runs.c.backfill_id == bindparam("backfill_id"))
    .group_by(transfer_runs.c.status)
)
_ERRORS = PreparedRead(
    select(transfer_runs.c.data_date, transfer_runs.c.error_message)
    .where(
        transfer_runs.c.backfill_id == bindparam("backfill_id"),
        transfer_runs.c.status == "FAILED",
    )
    .order_by(transfer_runs.c.data_date)
    .limit(MAX_ERRORS)
)


def _row(conn: Connection, account: str, backfill_id: int) -> dict[str, Any] | None:
    """The account's backfill by id, its columns by name (None: not the account's)."""
    found = _BACKFILL.rows(conn, {"account": account, "backfill_id": backfill_id})
    return dict(zip(backfills.c.keys(), found[0], strict=True)) if found else None


def _state(conn: Connection, row: Mapping[Any, Any] | None) -> BackfillState:
    assert row is not None
    counts: Counter[str] = Counter()
    started = ended = None
    for status, count, first_start, last_end in _RUN_COUNTS.rows(conn, {"backfill_id": row["id"]}):
        counts[status] = count
        if first_start is not None and (started is None or first_start < started):
            started = first_start
        if last_end is not None and (ended is None or last_end > ended):
            ended = last_end
    # Most backfills have no failed run: their report is read only when there is one.
    errors = _ERRORS.rows(conn, {"backfill_id": row["id"]}) if counts.get("FAILED") else []
    return BackfillState(
        id=row["id"],
        account=row["account"],
        transfer_id=row["transfer_id"],
        range_start=date.fromisoformat(row["range_start"]),
        range_end=date.fromisoformat(row["range_end"]),
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        counts=dict(counts),
        started_at=started,
        ended_at=ended if not any(counts.get(s) for s in ACTIVE) else None,
        errors=tuple((date.fromisoformat(d), e or "") for d, e in errors),
    )
