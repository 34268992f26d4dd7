"""Destinations: a tenant's warehouses and file stores (their secrets stored as ciphertext)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from querybatch.store.database import Database
from querybatch.store.repository import reads, writes
from querybatch.store.tables import destinations, transfers


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    """A stored destination. ``secrets`` is the engine's ciphertext, never the secrets."""

    id: int
    account: str
    type: str
    display_name: str
    auth_method: str | None
    settings: dict[str, Any]
    secrets: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DestinationValues:
    """What a create or an update writes."""

    type: str
    display_name: str
    auth_method: str | None
    settings: dict[str, Any]
    secrets: str | None


def _record(row: RowMapping) -> DestinationRecord:
    return DestinationRecord(
        id=row["id"],
        account=row["account"],
        type=row["type"],
        display_name=row["display_name"],
        auth_method=row["auth_method"],
        settings=dict(row["settings"] or {}),
        secrets=row["secrets"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class DestinationStore:
    """The repository of destinations, always read and written within one account."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @writes
    def create(
        self, account: str, values: DestinationValues, now: float, limit: int
    ) -> DestinationRecord | None:
        """Store a new destination; None when the account already has ``limit`` of them."""
        with self.db.writing() as conn:
            held = conn.execute(
                select(func.count())
                .select_from(destinations)
                .where(destinations.c.account == account)
            ).scalar_one()
            if held >= limit:
                return None
            row = (
                conn.execute(
                    insert(destinations)
                    .values(
                        account=account,
                        type=values.type,
                        display_name=values.display_name,
                        auth_method=values.auth_method,
                        settings=values.settings,
                        secrets=values.secrets,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*destinations.c)
                )
                .mappings()
                .one()
            )
        return _record(row)

    @reads
    def list(self, account: str) -> list[DestinationRecord]:
        """The account's destinations, oldest first."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(destinations)
                .where(destinations.c.account == account)
                .order_by(destinations.c.id)
            ).mappings()
            return [_record(row) for row in rows]

    @reads
    def get(self, account: str, destination_id: int) -> DestinationRecord | None:
        """One of the account's destinations, or None (another account's is None too)."""
        with self.db.reading() as conn:
            row = (
                conn.execute(
                    select(destinations).where(
                        destinations.c.account == account, destinations.c.id == destination_id
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    @writes
    def update(
        self, account: str, destination_id: int, values: DestinationValues, now: float
    ) -> DestinationRecord | None:
        """Replace a destination's name, method, settings and secrets; None if not found."""
        with self.db.writing() as conn:
            row = (
                conn.execute(
                    update(destinations)
                    .where(destinations.c.account == account, destinations.c.id == destination_id)
                    .values(
                        type=values.type,
                        display_name=values.display_name,
                        auth_method=values.auth_method,
                        settings=values.settings,
                        secrets=values.secrets,
                        updated_at=now,
                    )
                    .returning(*destinations.c)
                )
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    @writes
    def delete(self, account: str, destination_id: int) -> bool:
        """Remove a destination no transfer uses; whether one was removed."""
        in_use = (
            select(transfers.c.id)
            .where(transfers.c.account == account, transfers.c.destination_id == destination_id)
            .exists()
        )
        with self.db.writing() as conn:
            result = conn.execute(
                delete(destinations).where(
                    destinations.c.account == account,
                    destinations.c.id == destination_id,
                    ~in_use,
                )
            )
        return bool(result.rowcount)
