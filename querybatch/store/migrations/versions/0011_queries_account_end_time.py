"""a partial index of finished sub-queries by tenant and end time

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 22:20:00.000000

A tenant's activity (``GET /query/activity``: sub-queries finished per minute, failures by
error code and message) reads the sub-queries that ended in a recent window. Without an
index that is a scan of every sub-query the store holds. The index holds only finished
sub-queries (``end_time`` is set when a sub-query ends): storing a batch, whose sub-queries
have not ended, adds no entry; each sub-query gets its entry once, when it ends. ``status``
is in the index so that counting per minute and status reads the index alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_queries_account_end_time_status"
WHERE = "end_time IS NOT NULL"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        NAME,
        "queries",
        ["account", "end_time", "status"],
        unique=False,
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(NAME, table_name="queries")
