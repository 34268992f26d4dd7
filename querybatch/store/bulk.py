"""Bulk batches: creating them from an upload, reading, listing, every status change, leases.

Status changes are conditional updates (``WHERE status = <expected>``) checked against the
transition table of :mod:`querybatch.domain.bulk` first, so a change that raced another
(a cancel arriving while a step ends) matches no row and the loser re-reads the batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from querybatch.domain.bulk import FINAL_BULK_STATUSES, BulkStatus, check_move
from querybatch.errors import Conflict, NotFound
from querybatch.store.database import Database
from querybatch.store.repository import reads, writes
from querybatch.store.tables import bulk_batches, bulk_file_chunks, bulk_files


@dataclass(frozen=True, slots=True)
class BulkRecord:
    """A bulk batch as stored."""

    id: str
    account: str
    key_id: str
    status: BulkStatus
    operation: str
    hash: str | None
    description: dict[str, Any] | None
    created_ts: float
    updated_ts: float
    upload_id: str
    file_id: str | None
    sha256: str | None
    query_batch_id: str | None
    result_file_id: str | None
    lines_total: int | None
    lines_failed: int | None


class BulkStore:
    """The repository of bulk batches."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @writes
    def create(
        self,
        *,
        account: str,
        key_id: str,
        operation: str,
        hash: str | None,
        description: dict[str, Any] | None,
        upload_id: str,
        now: float,
    ) -> BulkRecord:
        """Store a new batch of a filled, live upload of the same tenant, in one transaction.

        NotFound when the upload is unknown, another tenant's or expired; Conflict when
        nothing was uploaded to it yet.
        """
        batch_id = str(uuid.uuid4())
        now = _shown(now)
        with self.db.writing() as conn:
            upload = conn.execute(
                select(bulk_files.c.state, bulk_files.c.expires_at).where(
                    bulk_files.c.id == upload_id,
                    bulk_files.c.kind == "upload",
                    bulk_files.c.account == account,
                )
            ).first()
            if upload is None or (upload.expires_at is not None and upload.expires_at < now):
                raise NotFound(f"No upload with handler '{upload_id[:64]}'")
            if upload.state != "complete":
                raise Conflict(
                    "Nothing was uploaded to this handler yet",
                    "PUT the file to the upload URL first.",
                )
            conn.execute(
                insert(bulk_batches).values(
                    id=batch_id,
                    account=account,
                    key_id=key_id,
                    status=BulkStatus.NEW,
                    operation=operation,
                    hash=hash,
                    description=description,
                    created_ts=now,
                    updated_ts=now,
                    upload_id=upload_id,
                )
            )
            row = conn.execute(select(bulk_batches).where(bulk_batches.c.id == batch_id))
            return _record(row.mappings().one())

    @reads
    def get(self, batch_id: str, account: str | None = None) -> BulkRecord | None:
        """A batch by id (of ``account`` when given), or None."""
        query = select(bulk_batches).where(bulk_batches.c.id == batch_id)
        if account is not None:
            query = query.where(bulk_batches.c.account == account)
        with self.db.reading() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    @reads
    def page(
        self,
        account: str,
        *,
        ge: float | None,
        le: float | None,
        after: tuple[float, str] | None,
        newest_first: bool,
        limit: int,
        statuses: frozenset[BulkStatus] | None = None,
    ) -> list[tuple[str, str, float]]:
        """(id, status, created_ts) of a tenant's batches in created order, after ``after``
        (only those in ``statuses``, when given)."""
        conditions = [bulk_batches.c.account == account]
        if statuses is not None:
            conditions.append(bulk_batches.c.status.in_(sorted(statuses)))
        if ge is not None:
            conditions.append(bulk_batches.c.created_ts >= ge)
        if le is not None:
            conditions.append(bulk_batches.c.created_ts <= le)
        created, ident = bulk_batches.c.created_ts, bulk_batches.c.id
        if after is not None:
            ts, last = after
            if newest_first:
                conditions.append(or_(created < ts, and_(created == ts, ident < last)))
            else:
                conditions.append(or_(created > ts, and_(created == ts, ident > last)))
        order = (created.desc(), ident.desc()) if newest_first else (created, ident)
        with self.db.reading() as conn:
            rows = conn.execute(
                select(ident, bulk_batches.c.status, created)
                .where(*conditions)
                .order_by(*order)
                .limit(limit)
            )
            return [(row.id, row.status, row.created_ts) for row in rows]

    @writes
    def move(
        self,
        /,
        batch_id: str,
        source: BulkStatus,
        target: BulkStatus,
        now: float,
        **values: Any,
    ) -> bool:
        """Move a batch from ``source`` to ``target`` (with ``values``); False if it was not
        in ``source`` any more. An illegal transition is a bug and raises."""
        check_move(source, target)
        with self.db.writing() as conn:
            return bool(
                conn.execute(
                    update(bulk_batches)
                    .where(bulk_batches.c.id == batch_id, bulk_batches.c.status == source)
                    .values(status=target, updated_ts=_shown(now), **values)
                ).rowcount
            )

    @writes
    def set_query_batch(self, batch_id: str, query_batch_id: str) -> None:
        """Remember the query batch running the operations (whatever the status now is)."""
        with self.db.writing() as conn:
            conn.execute(
                update(bulk_batches)
                .where(bulk_batches.c.id == batch_id)
                .values(query_batch_id=query_batch_id)
            )

    @writes
    def purge(self, batch_id: str) -> None:
        """Delete a batch and every file of it."""
        files = select(bulk_files.c.id).where(bulk_files.c.batch_id == batch_id)
        with self.db.writing() as conn:
            conn.execute(delete(bulk_file_chunks).where(bulk_file_chunks.c.file_id.in_(files)))
            conn.execute(delete(bulk_files).where(bulk_files.c.batch_id == batch_id))
            conn.execute(delete(bulk_batches).where(bulk_batches.c.id == batch_id))

    # -- which node drives which batch ------------------------------------------------------

    @writes
    def claim(self, node: str, now: float, lease_until: float, *, everything: bool) -> list[str]:
        """Take over unfinished batches nobody drives (lease lapsed), or all of them."""
        conditions: list[ColumnElement[bool]] = [bulk_batches.c.status.not_in(FINAL_BULK_STATUSES)]
        if not everything:
            conditions.append(
                or_(
                    bulk_batches.c.lease_until.is_(None),
                    bulk_batches.c.lease_until < now,
                    bulk_batches.c.owner == node,
                )
            )
        with self.db.writing() as conn:
            rows = conn.execute(
                update(bulk_batches)
                .where(*conditions)
                .values(owner=node, lease_until=lease_until)
                .returning(bulk_batches.c.id)
            ).all()
        return [row.id for row in rows]

    @writes
    def claim_one(self, batch_id: str, node: str, lease_until: float) -> bool:
        """Take a batch just created or changed on this node."""
        with self.db.writing() as conn:
            return bool(
                conn.execute(
                    update(bulk_batches)
                    .where(bulk_batches.c.id == batch_id)
                    .values(owner=node, lease_until=lease_until)
                ).rowcount
            )

    @writes
    def renew(self, node: str, batch_ids: list[str], lease_until: float) -> None:
        """Extend this node's leases on the batches it is driving."""
        if not batch_ids:
            return
        with self.db.writing() as conn:
            conn.execute(
                update(bulk_batches)
                .where(bulk_batches.c.id.in_(batch_ids), bulk_batches.c.owner == node)
                .values(lease_until=lease_until)
            )


def _shown(moment: float) -> float:
    # Times are shown with three decimals and filtered on (ge/le, cursors): store them so.
    return round(moment, 3)


def _record(row: RowMapping) -> BulkRecord:
    return BulkRecord(
        id=row["id"],
        account=row["account"],
        key_id=row["key_id"],
        status=BulkStatus(row["status"]),
        operation=row["operation"],
        hash=row["hash"],
        description=row["description"],
        created_ts=row["created_ts"],
        updated_ts=row["updated_ts"],
        upload_id=row["upload_id"],
        file_id=row["file_id"],
        sha256=row["sha256"],
        query_batch_id=row["query_batch_id"],
        result_file_id=row["result_file_id"],
        lines_total=row["lines_total"],
        lines_failed=row["lines_failed"],
    )
