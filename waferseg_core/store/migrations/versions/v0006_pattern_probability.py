"""Cached predictions keep the wafer head's probability of the pattern called.

A wafer's ``confidence`` (the mean over its dies of each die's class probability) is near 1 on
almost every wafer, because background dies dominate it; the lot browser showed it as the
wafer's confidence. The head's probability of the pattern called is what says how sure the
model is of a wafer's call, and only the model can compute it: the cached predictions, which
lack it, are dropped and predicted again on their next use. Embeddings stay.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Delete every cached prediction, then add the column (empty table: no default needed)."""
    op.execute(sa.delete(sa.table("predictions")))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pattern_probability", sa.Double(), nullable=False))


def downgrade() -> None:
    """Drop the column; the remaining rows are a cache the older release reads as it did."""
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("pattern_probability")
