"""partial indexes on sub-queries; result chunks in the order they were written

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 08:20:00.000000

Four indexes of ``queries`` served only a few of its rows (in flight, made by a data request,
successful, with a result) but took an entry for every row: storing a batch of 100,000
sub-queries spent about a third of its insert on them. They now hold only the rows their
queries look for.

Expiry looked at every result chunk on every pass (every 30 s) for chunks of runs that never
recorded an outcome: a cost that grew with the store. Chunks are now indexed in the order
they were written, and each pass looks only at those written since the last one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_queries_status_lease_expires_at": (
        ["status", "lease_expires_at"],
        "lease_expires_at IS NOT NULL",
    ),
    "ix_queries_account_request_id": (["account", "request_id"], "request_id IS NOT NULL"),
    "ix_queries_fingerprint_status": (["fingerprint", "status"], "status = 'SUCCESS'"),
    "ix_queries_result_id": (["result_id"], "result_id IS NOT NULL"),
}


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_result_chunks_created_at_result_id_seq",
        "result_chunks",
        ["created_at", "result_id", "seq"],
        unique=False,
    )
    for name, (columns, where) in INDEXES.items():
        op.drop_index(name, table_name="queries")
        op.create_index(
            name,
            "queries",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_result_chunks_created_at_result_id_seq", table_name="result_chunks")
    for name, (columns, _) in INDEXES.items():
        op.drop_index(name, table_name="queries")
        op.create_index(name, "queries", columns, unique=False)
