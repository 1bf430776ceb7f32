"""Drop cached predictions and embeddings of wafers over 96 dies across.

Since this revision the predictor sees such wafers at a coarser die scale
(``waferseg_core/coarse.py``); what the store cached for them under the same model was computed
at full scale and would be shown as current. They are only a cache: the app and ``waferseg``
predict those wafers again on their next use.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:20:00
"""

from collections.abc import Sequence

from waferseg_core.store.migrations.wafer_cache import drop_large_wafer_cache

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Delete the full-scale cache entries of large wafers."""
    drop_large_wafer_cache(above=96)


def downgrade() -> None:
    """Nothing to restore: the deleted rows were a cache, recomputed on use."""
