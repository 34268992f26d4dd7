"""backfills: one Backfill transfer run per data date of a range

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 19:35:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("range_start", sa.String(length=10), nullable=False),
        sa.Column("range_end", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("cancelled_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )
    op.create_index(
        op.f("ix_backfills_account_transfer_id_id"),
        "backfills",
        ["account", "transfer_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_backfills_account_transfer_id_id"), table_name="backfills")
    op.drop_table("backfills")
