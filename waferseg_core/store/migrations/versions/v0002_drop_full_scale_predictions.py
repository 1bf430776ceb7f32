"""Drop cached predictions and embeddings of wafers over 96 dies across.

Since this revision the predictor sees such wafers at a coarser die scale
(``waferseg_core/coarse.py``); what the store cached for them under the same model was computed
at full scale and would be shown as current. They are only a cache: the app and ``waferseg``
predict those wafers again on their next use. The 96 is written here, not imported, so that this
revision does the same thing whatever the constant becomes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FULL_SCALE_ABOVE = 96


def upgrade() -> None:
    """Delete the full-scale cache entries of large wafers."""
    wafers = sa.table(
        "wafers", sa.column("id"), sa.column("rows"), sa.column("cols"), sa.column("content_hash")
    )
    large = sa.or_(wafers.c.rows > FULL_SCALE_ABOVE, wafers.c.cols > FULL_SCALE_ABOVE)
    predictions = sa.table("predictions", sa.column("wafer_hash"))
    embeddings = sa.table("embeddings", sa.column("wafer_id"))
    op.execute(
        sa.delete(predictions).where(
            predictions.c.wafer_hash.in_(sa.select(wafers.c.content_hash).where(large))
        )
    )
    op.execute(
        sa.delete(embeddings).where(embeddings.c.wafer_id.in_(sa.select(wafers.c.id).where(large)))
    )


def downgrade() -> None:
    """Nothing to restore: the deleted rows were a cache, recomputed on use."""
