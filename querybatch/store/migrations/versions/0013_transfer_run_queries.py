"""transfer_run_queries: which queries of a shared query batch belong to a transfer run

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 04:30:00.000000

The runs of a backfill share query batches (one batch for several consecutive data dates,
instead of a batch of 25 sub-queries per run, each planned, written, claimed and ended on
its own). A run names its queries in the batch: the positions after ``query_offset``,
``query_count`` of them. Runs stored before this revision keep both null: their batch was
their own, every query of it theirs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("transfer_runs") as batch_op:
        batch_op.add_column(sa.Column("query_offset", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("query_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("transfer_runs") as batch_op:
        batch_op.drop_column("query_count")
        batch_op.drop_column("query_offset")
