"""sub_query_keys: what the batch page's account and date filters match, per sub-query

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 01:20:00.000000

The batch page's ``account`` and ``date`` filters matched each sub-query's stored spec (JSON)
over the whole batch: 0.6 s per request at 200,000 sub-queries on SQLite. This table holds,
per sub-query, the accounts (lower case) and the date range, in narrow rows keyed by batch and
position; it is written on a batch's first account or date filter, not when the batch is
stored, so storing a batch costs nothing more. Batches stored before this revision get their
rows the same way, on their first filter.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "sub_query_keys",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.String(), nullable=False),
        sa.Column("start_date", sa.String(length=10), nullable=False),
        sa.Column("end_date", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_sub_query_keys_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_sub_query_keys")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("sub_query_keys")
