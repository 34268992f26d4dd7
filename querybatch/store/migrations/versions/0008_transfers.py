"""transfers: a data source's schema loaded into a destination on a schedule

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 16:20:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import querybatch.store.types

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("data_source_id", sa.String(length=64), nullable=False),
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("config", querybatch.store.types.JSONText(), nullable=False),
        sa.Column("next_run_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    op.create_index(op.f("ix_transfers_account_id"), "transfers", ["account", "id"], unique=False)
    op.create_index(
        op.f("ix_transfers_account_destination_id"),
        "transfers",
        ["account", "destination_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_transfers_state_next_run_at"), "transfers", ["state", "next_run_at"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_transfers_state_next_run_at"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_account_destination_id"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_account_id"), table_name="transfers")
    op.drop_table("transfers")
