"""index sub-queries by result

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 06:40:00.000000

Deleting a result checks that no sub-query refers to it (the foreign key, and the expiry's
own check for results that several sub-queries share). Without an index on
``queries.result_id`` each such check scanned every sub-query, so expiring N results took
time in N times the size of the store: about ten minutes for 762,000 expired sub-queries.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("queries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queries_result_id"), ["result_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("queries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queries_result_id"))
