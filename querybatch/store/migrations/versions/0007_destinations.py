"""destinations: where a tenant's transfers load

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 15:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import querybatch.store.types

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "destinations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("auth_method", sa.String(length=100), nullable=True),
        sa.Column("settings", querybatch.store.types.JSONText(), nullable=False),
        sa.Column("secrets", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destinations")),
    )
    op.create_index(
        op.f("ix_destinations_account_id"), "destinations", ["account", "id"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_destinations_account_id"), table_name="destinations")
    op.drop_table("destinations")
