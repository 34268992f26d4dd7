"""cache index of data requests only: no index entry for each successful sub-query of a batch

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 02:40:00.000000

A data request's ``cache_minutes`` looks for an identical successful data request. The index
it reads held every successful sub-query of every batch too, each entry at a place its
fingerprint (a hash) picks: keeping it cost about a fifth of the server's CPU per sub-query
of a batch. It now holds successful data requests only (their hidden batches' ids begin
``qry_``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_queries_fingerprint_status"
BEFORE = "status = 'SUCCESS'"
AFTER = "status = 'SUCCESS' AND substr(batch_id, 1, 4) = 'qry_'"


def _index(where: str) -> None:
    op.drop_index(NAME, table_name="queries")
    op.create_index(
        NAME,
        "queries",
        ["fingerprint", "status"],
        unique=False,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    """Upgrade schema."""
    _index(AFTER)


def downgrade() -> None:
    """Downgrade schema."""
    _index(BEFORE)
