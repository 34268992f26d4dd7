"""request ids of queries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 19:20:00.000000

Every request id handed out for a query resolves while the query lives: the one that
created it stays in ``queries.request_id``, the others (a request that joined a running
query, or was answered by an ended one) are kept in ``query_requests``, removed with the
query.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "query_requests",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("query_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["queries.id"],
            name=op.f("fk_query_requests_query_id_queries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account", "request_id", name=op.f("pk_query_requests")),
    )
    with op.batch_alter_table("query_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_query_requests_query_id"), ["query_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("query_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_query_requests_query_id"))
    op.drop_table("query_requests")
