"""batches_stored_behind: a large batch's sub-queries stored behind its answer

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 20:30:00.000000

A batch of a million sub-queries took 14 to 18 s to answer, nearly all of it storing its
sub-queries. The answer now comes once the first slice is stored; ``n_stored`` says how many
are, and ``plan`` holds what the rest are made from, until they are all stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


INDEX = "ix_batches_n_stored"
WHERE = "n_stored IS NOT NULL"


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("batches", sa.Column("n_stored", sa.Integer(), nullable=True))
    op.add_column("batches", sa.Column("plan", sa.Text(), nullable=True))
    op.create_index(
        INDEX,
        "batches",
        ["n_stored"],
        unique=False,
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(INDEX, table_name="batches")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("plan")
        batch_op.drop_column("n_stored")
