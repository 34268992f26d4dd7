"""Files of bulk batches (uploads, a batch's copy, results), stored in chunks of about 1 MiB.

Every API node serves every file because the bytes live in the database. Files are written
chunk by chunk while their bytes stream in, and read back a few chunks at a time, so no
file is ever held whole in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from querybatch.domain.bulk import BulkStatus
from querybatch.store.database import Database
from querybatch.store.repository import reads, writes
from querybatch.store.tables import bulk_batches, bulk_file_chunks, bulk_files

CHUNK_BYTES = 1024 * 1024

# Uploads a batch is still copying must not go away under it (withdrawn or expired).
_COPYING = (BulkStatus.NEW, BulkStatus.COPYING)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A stored file: who owns it, what it is for, and (once complete) its size and hash."""

    id: str
    account: str
    kind: str  # upload | part | batch | result
    state: str  # pending | complete
    batch_id: str | None
    created_at: float
    expires_at: float | None
    size: int
    sha256: str | None


class FileStore:
    """The repository of bulk files and their chunks."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- creating and writing ---------------------------------------------------------------

    @writes
    def create(
        self,
        account: str,
        kind: str,
        now: float,
        *,
        batch_id: str | None = None,
        expires_at: float | None = None,
    ) -> FileRecord:
        """A new, empty, pending file (an upload's id is its handler)."""
        prefix = {"upload": "upl_", "part": "prt_", "batch": "bfl_", "result": "res_"}[kind]
        values = {
            "id": prefix + secrets.token_hex(16),
            "account": account,
            "kind": kind,
            "state": "pending",
            "batch_id": batch_id,
            "created_at": now,
            "expires_at": expires_at,
            "size": 0,
            "sha256": None,
        }
        with self.db.writing() as conn:
            conn.execute(insert(bulk_files).values(values))
        return FileRecord(**values)  # type: ignore[arg-type]

    @writes
    def write_chunks(self, file_id: str, chunks: Sequence[tuple[int, bytes]]) -> None:
        """Append chunks (sequence number, bytes); fails if the file was deleted meanwhile."""
        if not chunks:
            return
        with self.db.writing() as conn:
            conn.execute(
                insert(bulk_file_chunks),
                [{"file_id": file_id, "seq": seq, "data": data} for seq, data in chunks],
            )

    @writes
    def complete(self, file_id: str, size: int, sha256: str) -> bool:
        """Mark a file whole; False if it is gone."""
        with self.db.writing() as conn:
            return bool(
                conn.execute(
                    update(bulk_files)
                    .where(bulk_files.c.id == file_id)
                    .values(state="complete", size=size, sha256=sha256)
                ).rowcount
            )

    @writes
    def finish_upload(
        self, handler: str, part_id: str, size: int, sha256: str, keep_until: float
    ) -> bool:
        """Make a fully received part the content of a pending upload, atomically.

        False (and the part is dropped) when the upload was filled by another PUT or withdrawn
        meanwhile. A PUT that began while its link was valid may end after it expired; the
        filled upload then lives until ``keep_until``.
        """
        with self.db.writing() as conn:
            taken = conn.execute(
                update(bulk_files)
                .where(
                    bulk_files.c.id == handler,
                    bulk_files.c.kind == "upload",
                    bulk_files.c.state == "pending",
                )
                .values(state="complete", size=size, sha256=sha256, expires_at=keep_until)
            ).rowcount
            if taken:
                conn.execute(
                    update(bulk_file_chunks)
                    .where(bulk_file_chunks.c.file_id == part_id)
                    .values(file_id=handler)
                )
            conn.execute(delete(bulk_files).where(bulk_files.c.id == part_id))
        return bool(taken)

    # -- reading ----------------------------------------------------------------------------

    @reads
    def get(self, file_id: str) -> FileRecord | None:
        """A file by id, whoever owns it (signed links carry their own authority)."""
        with self.db.reading() as conn:
            row = conn.execute(select(bulk_files).where(bulk_files.c.id == file_id)).mappings()
            found = row.first()
        return None if found is None else _file(found)

    @reads
    def read_chunks(self, file_id: str, first_seq: int, count: int) -> list[bytes]:
        """Up to ``count`` chunks of a file from ``first_seq`` on, in order."""
        with self.db.reading() as conn:
            rows = conn.execute(
                select(bulk_file_chunks.c.data)
                .where(bulk_file_chunks.c.file_id == file_id, bulk_file_chunks.c.seq >= first_seq)
                .order_by(bulk_file_chunks.c.seq)
                .limit(count)
            )
            return [bytes(row.data) for row in rows]

    @reads
    def count(self, batch_id: str) -> int:
        """How many files (and chunks of them) a batch still has; for tests and checks."""
        with self.db.reading() as conn:
            files = select(bulk_files.c.id).where(bulk_files.c.batch_id == batch_id)
            n_files = conn.execute(select(func.count()).select_from(files.subquery())).scalar()
            n_chunks = conn.execute(
                select(func.count())
                .select_from(bulk_file_chunks)
                .where(bulk_file_chunks.c.file_id.in_(files))
            ).scalar()
        return int(n_files or 0) + int(n_chunks or 0)

    # -- deleting ---------------------------------------------------------------------------

    @writes
    def delete(self, file_id: str) -> None:
        """Delete a file and its chunks."""
        with self.db.writing() as conn:
            conn.execute(delete(bulk_file_chunks).where(bulk_file_chunks.c.file_id == file_id))
            conn.execute(delete(bulk_files).where(bulk_files.c.id == file_id))

    @writes
    def delete_batch_files(self, batch_id: str, kinds: Sequence[str]) -> None:
        """Delete a batch's files of these kinds (a step starting over, or the batch going)."""
        files = select(bulk_files.c.id).where(
            bulk_files.c.batch_id == batch_id, bulk_files.c.kind.in_(kinds)
        )
        with self.db.writing() as conn:
            conn.execute(delete(bulk_file_chunks).where(bulk_file_chunks.c.file_id.in_(files)))
            conn.execute(
                delete(bulk_files).where(
                    bulk_files.c.batch_id == batch_id, bulk_files.c.kind.in_(kinds)
                )
            )

    @writes
    def withdraw_upload(self, account: str, handler: str, now: float) -> str:
        """Delete a tenant's upload: "deleted", "missing", or "busy" (a batch is copying it)."""
        copying = select(bulk_batches.c.id).where(
            bulk_batches.c.upload_id == handler, bulk_batches.c.status.in_(_COPYING)
        )
        with self.db.writing() as conn:
            row = conn.execute(
                select(bulk_files.c.expires_at).where(
                    bulk_files.c.id == handler,
                    bulk_files.c.account == account,
                    bulk_files.c.kind == "upload",
                )
            ).first()
            if row is None or (row.expires_at is not None and row.expires_at < now):
                return "missing"
            if conn.execute(copying.limit(1)).first() is not None:
                return "busy"
            conn.execute(delete(bulk_file_chunks).where(bulk_file_chunks.c.file_id == handler))
            conn.execute(delete(bulk_files).where(bulk_files.c.id == handler))
        return "deleted"

    @writes
    def sweep(self, now: float, grace: float) -> int:
        """Delete expired uploads and abandoned parts no batch is still copying, and orphans.

        An empty (pending) upload is kept ``grace`` seconds past its expiry: a PUT that began
        in time may still be sending its body.
        """
        copying = select(bulk_batches.c.upload_id).where(bulk_batches.c.status.in_(_COPYING))
        expired = select(bulk_files.c.id).where(
            bulk_files.c.kind.in_(("upload", "part")),
            or_(
                and_(bulk_files.c.state == "complete", bulk_files.c.expires_at < now),
                bulk_files.c.expires_at < now - grace,
            ),
            bulk_files.c.id.not_in(copying),
        )
        # Files of a batch deleted while one of its steps was still writing them.
        orphaned = select(bulk_files.c.id).where(
            bulk_files.c.kind.in_(("batch", "result")),
            bulk_files.c.batch_id.not_in(select(bulk_batches.c.id)),
        )
        with self.db.writing() as conn:
            ids = [row.id for row in conn.execute(expired)]
            ids += [row.id for row in conn.execute(orphaned)]
            if ids:
                conn.execute(delete(bulk_file_chunks).where(bulk_file_chunks.c.file_id.in_(ids)))
                conn.execute(delete(bulk_files).where(bulk_files.c.id.in_(ids)))
        return len(ids)


def _file(row: RowMapping) -> FileRecord:
    return FileRecord(
        id=row["id"],
        account=row["account"],
        kind=row["kind"],
        state=row["state"],
        batch_id=row["batch_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        size=int(row["size"]),
        sha256=row["sha256"],
    )
