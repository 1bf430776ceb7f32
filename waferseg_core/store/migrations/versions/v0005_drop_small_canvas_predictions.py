"""Drop cached predictions and embeddings of wafers whose model canvas grew to 64 dies.

Since this revision the model sees every wafer on a canvas of at least 64 x 64 dies
(``waferseg_core/modelio.py`` ``MIN_CANVAS``; it was 32 for a side of up to 32 dies), which
changes what it computes for a wafer with a side of 32 dies or fewer: its mask, pattern and
embedding. A wafer over 96 dies across is seen through its coarse view, whose sides can be that
short too, so its entries go as well.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from waferseg_core.store.migrations.wafer_cache import WAFERS, drop_wafer_cache

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Delete the entries of wafers with a side of at most 32 dies, and of large wafers."""
    rows, cols = WAFERS.c.rows, WAFERS.c.cols
    drop_wafer_cache(sa.or_(rows <= 32, cols <= 32, rows > 96, cols > 96))


def downgrade() -> None:
    """Nothing to restore: the deleted rows were a cache, recomputed on use."""
