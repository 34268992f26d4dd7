"""Transfers: a tenant's scheduled loads of a data source's schema into a destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from querybatch.store.database import Database
from querybatch.store.repository import reads, writes
from querybatch.store.tables import destinations, transfers
from querybatch.store.transfer_runs import delete_runs_of

Refusal = Literal["limit", "destination"]


@dataclass(frozen=True, slots=True)
class TransferValues:
    """What a create or an update writes (``config``: accounts, schedule, settings...)."""

    display_name: str
    data_source_id: str
    schema_id: int
    destination_id: int
    config: dict[str, Any]
    next_run_at: float | None


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A stored transfer."""

    id: int
    account: str
    display_name: str
    data_source_id: str
    schema_id: int
    destination_id: int
    state: str
    config: dict[str, Any]
    next_run_at: float | None
    created_at: float
    updated_at: float


Records = list[TransferRecord]  # the class's ``list`` method shadows the builtin in it


def _record(row: RowMapping) -> TransferRecord:
    return TransferRecord(
        id=row["id"],
        account=row["account"],
        display_name=row["display_name"],
        data_source_id=row["data_source_id"],
        schema_id=row["schema_id"],
        destination_id=row["destination_id"],
        state=row["state"],
        config=dict(row["config"] or {}),
        next_run_at=row["next_run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class TransferStore:
    """The repository of transfers, always read and written within one account."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @writes
    def create(
        self, account: str, values: TransferValues, now: float, limit: int
    ) -> TransferRecord | Refusal:
        """Store a new, active transfer; ``"limit"`` when the account already has ``limit``,
        ``"destination"`` when its destination is gone (checked in the same transaction)."""
        with self.db.writing() as conn:
            held = conn.execute(
                select(func.count()).select_from(transfers).where(transfers.c.account == account)
            ).scalar_one()
            if held >= limit:
                return "limit"
            if not _has_destination(conn, account, values.destination_id):
                return "destination"
            row = (
                conn.execute(
                    insert(transfers)
                    .values(
                        account=account,
                        display_name=values.display_name,
                        data_source_id=values.data_source_id,
                        schema_id=values.schema_id,
                        destination_id=values.destination_id,
                        state="active",
                        config=values.config,
                        next_run_at=values.next_run_at,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*transfers.c)
                )
                .mappings()
                .one()
            )
        return _record(row)

    @reads
    def list(self, account: str) -> list[TransferRecord]:
        """The account's transfers, oldest first."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(transfers).where(transfers.c.account == account).order_by(transfers.c.id)
            ).mappings()
            return [_record(row) for row in rows]

    @reads
    def get(self, account: str, transfer_id: int) -> TransferRecord | None:
        """One of the account's transfers, or None (another account's is None too)."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(transfers).where(
                        transfers.c.account == account, transfers.c.id == transfer_id
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    @reads
    def using(self, account: str, destination_id: int) -> Records:
        """The account's transfers that load into ``destination_id``, oldest first."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(transfers)
                .where(transfers.c.account == account, transfers.c.destination_id == destination_id)
                .order_by(transfers.c.id)
            ).mappings()
            return [_record(row) for row in rows]

    @writes
    def update(
        self, account: str, transfer_id: int, values: TransferValues, now: float
    ) -> TransferRecord | Refusal | None:
        """Replace a transfer's configuration (its state is kept); None if not found,
        ``"destination"`` when its destination is gone."""
        with self.db.writing() as conn:
            if not _has_destination(conn, account, values.destination_id):
                return "destination"
            row = (
                conn.execute(
                    update(transfers)
                    .where(transfers.c.account == account, transfers.c.id == transfer_id)
                    .values(
                        display_name=values.display_name,
                        data_source_id=values.data_source_id,
                        schema_id=values.schema_id,
                        destination_id=values.destination_id,
                        config=values.config,
                        next_run_at=values.next_run_at,
                        updated_at=now,
                    )
                    .returning(*transfers.c)
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    @writes
    def set_state(
        self, account: str, transfer_id: int, state: str, next_run_at: float | None, now: float
    ) -> TransferRecord | None:
        """Pause (``paused``) or resume (``active``) a transfer; None if not found."""
        with self.db.writing() as conn:
            row = (
                conn.execute(
                    update(transfers)
                    .where(transfers.c.account == account, transfers.c.id == transfer_id)
                    .values(state=state, next_run_at=next_run_at, updated_at=now)
                    .returning(*transfers.c)
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    @writes
    def delete(self, account: str, transfer_id: int) -> bool:
        """Remove a transfer; whether there was one."""
        with self.db.writing() as conn:
            delete_runs_of(conn, account, transfer_id)
            result = conn.execute(
                delete(transfers).where(
                    transfers.c.account == account, transfers.c.id == transfer_id
                )
            )
        return bool(result.rowcount)


def _has_destination(conn: Any, account: str, destination_id: int) -> bool:
    found = conn.execute(
        select(destinations.c.id).where(
            destinations.c.account == account, destinations.c.id == destination_id
        )
    ).first()
    return found is not None
