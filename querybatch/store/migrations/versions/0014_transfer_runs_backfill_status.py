"""transfer_runs_backfill_status: a backfill's runs found by its id, counted by status

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 09:10:00.000000

A backfill's status and counters are read from its runs on every poll of it, and the
runner counts each backfill's runs under way on every pass; both scanned every run of
every transfer, a table that only grows.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_transfer_runs_backfill_id_status"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(NAME, "transfer_runs", ["backfill_id", "status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(NAME, table_name="transfer_runs")
