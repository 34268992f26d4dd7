"""transfer runs: one query batch for one data date of a transfer, then its load

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 19:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "transfer_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("data_date", sa.String(length=10), nullable=False),
        sa.Column("run_type", sa.String(length=16), nullable=False),
        sa.Column("run_key", sa.String(length=40), nullable=False),
        sa.Column("backfill_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("rows_loaded", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("error_message", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_runs")),
        sa.UniqueConstraint(
            "transfer_id",
            "data_date",
            "run_key",
            name=op.f("uq_transfer_runs_transfer_id_data_date_run_key"),
        ),
    )
    op.create_index(
        op.f("ix_transfer_runs_account_transfer_id_data_date"),
        "transfer_runs",
        ["account", "transfer_id", "data_date"],
        unique=False,
    )
    op.create_index(
        op.f("ix_transfer_runs_status_id"), "transfer_runs", ["status", "id"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_transfer_runs_status_id"), table_name="transfer_runs")
    op.drop_index(
        op.f("ix_transfer_runs_account_transfer_id_data_date"), table_name="transfer_runs"
    )
    op.drop_table("transfer_runs")
