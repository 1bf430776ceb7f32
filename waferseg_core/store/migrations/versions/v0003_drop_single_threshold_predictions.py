"""Drop cached predictions and embeddings of wafers over 96 dies across, again.

Since this revision a cell of a large wafer's coarse view fails along a ramp of its dies'
failing share rather than from one threshold (``waferseg_core/coarse.py``), so what the store
cached for those wafers under revision 0002 no longer matches what the predictor gives.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:10:00
"""

from collections.abc import Sequence

from waferseg_core.store.migrations.wafer_cache import drop_large_wafer_cache

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Delete the single-threshold cache entries of large wafers."""
    drop_large_wafer_cache(above=96)


def downgrade() -> None:
    """Nothing to restore: the deleted rows were a cache, recomputed on use."""
