"""Dropping what the store cached for large wafers, when the way they are predicted changes.

Predictions and embeddings are cached under the model file's hash, but a wafer over
``coarse.MAX_SIDE`` dies across is predicted through its coarse view, which is not part of that
hash. A revision that changes the view drops those entries; the app and ``waferseg`` predict the
wafers again on their next use. ``above`` is given by each revision, not imported, so that a
revision does the same thing whatever the constant becomes.
"""

import sqlalchemy as sa
from alembic import op


def drop_large_wafer_cache(above: int, *, embeddings: bool = True) -> None:
    """Delete cached predictions (and embeddings) of wafers more than ``above`` dies across.

    ``embeddings`` False keeps them: a change in how the model's output reaches the dies
    leaves what the model computes, the embedding included, as it was.
    """
    wafers = sa.table(
        "wafers", sa.column("id"), sa.column("rows"), sa.column("cols"), sa.column("content_hash")
    )
    large = sa.or_(wafers.c.rows > above, wafers.c.cols > above)
    predictions = sa.table("predictions", sa.column("wafer_hash"))
    embedding_rows = sa.table("embeddings", sa.column("wafer_id"))
    op.execute(
        sa.delete(predictions).where(
            predictions.c.wafer_hash.in_(sa.select(wafers.c.content_hash).where(large))
        )
    )
    if not embeddings:
        return
    on_large = embedding_rows.c.wafer_id.in_(sa.select(wafers.c.id).where(large))
    op.execute(sa.delete(embedding_rows).where(on_large))
