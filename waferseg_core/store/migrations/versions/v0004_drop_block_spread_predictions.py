"""Drop cached predictions of wafers over 96 dies across, once more (embeddings stay).

Since this revision each die of a large wafer takes class scores interpolated between the
coarse cells around it (``waferseg_core/coarse.py`` ``interpolate``) instead of its own block's,
so the masks, probabilities and patterns the store cached for those wafers no longer match what
the predictor gives. The model's outputs themselves did not change, so the embeddings stay.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 03:20:00
"""

from collections.abc import Sequence

from waferseg_core.store.migrations.wafer_cache import drop_large_wafer_cache

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Delete the block-spread predictions of large wafers."""
    drop_large_wafer_cache(above=96, embeddings=False)


def downgrade() -> None:
    """Nothing to restore: the deleted rows were a cache, recomputed on use."""
