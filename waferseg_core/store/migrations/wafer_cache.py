"""Dropping what the store cached for some wafers, when the way they are predicted changes.

Predictions and embeddings are cached under the model file's hash, but how a wafer reaches the
model (its coarse view over ``coarse.MAX_SIDE`` dies across, its canvas) is not part of that
hash. A revision that changes it drops those wafers' entries; the app and ``waferseg`` predict
them again on their next use. Sizes are given by each revision, not imported, so that a revision
does the same thing whatever the constants become.
"""

import sqlalchemy as sa
from alembic import op

WAFERS = sa.table(
    "wafers", sa.column("id"), sa.column("rows"), sa.column("cols"), sa.column("content_hash")
)


def drop_wafer_cache(which: sa.ColumnElement[bool], *, embeddings: bool = True) -> None:
    """Delete cached predictions (and embeddings) of the wafers ``which`` selects in ``WAFERS``.

    ``embeddings`` False keeps them: a change in how the model's output reaches the dies
    leaves what the model computes, the embedding included, as it was.
    """
    predictions = sa.table("predictions", sa.column("wafer_hash"))
    embedding_rows = sa.table("embeddings", sa.column("wafer_id"))
    op.execute(
        sa.delete(predictions).where(
            predictions.c.wafer_hash.in_(sa.select(WAFERS.c.content_hash).where(which))
        )
    )
    if not embeddings:
        return
    chosen = embedding_rows.c.wafer_id.in_(sa.select(WAFERS.c.id).where(which))
    op.execute(sa.delete(embedding_rows).where(chosen))


def drop_large_wafer_cache(above: int, *, embeddings: bool = True) -> None:
    """Delete cached predictions (and embeddings) of wafers more than ``above`` dies across."""
    drop_wafer_cache(sa.or_(WAFERS.c.rows > above, WAFERS.c.cols > above), embeddings=embeddings)
