"""batch_packs: a stopped batch's rows in packs of many sub-queries, for its downloads

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 02:00:00.000000

A download of a batch of many small results read, decoded and laid out each sub-query's
result on its own: it ran at a quarter of the rows per second of one large result. Once a
batch stops, its rows are laid out on its columns and kept a range of positions at a time,
as JSON rows and as ndjson lines, each compressed; ``batches.packed_through`` says how far
that got.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("batches", sa.Column("packed_through", sa.Integer(), nullable=True))
    op.create_table(
        "batch_packs",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("first_position", sa.Integer(), nullable=False),
        sa.Column("last_position", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.Column("rows_size", sa.Integer(), nullable=False),
        sa.Column("lines", sa.LargeBinary(), nullable=False),
        sa.Column("lines_size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_packs_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", "first_position", name=op.f("pk_batch_packs")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("batch_packs")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("packed_through")
