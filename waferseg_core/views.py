"""Test-time views of a wafer: the dihedral group's flips and quarter turns of the die grid.

Wafer patterns have no preferred orientation (the model trains on all eight), so a prediction
averaged over several views of the same wafer is steadier at region outlines than one pass. View
``t`` transposes the grid when ``t >= 4`` and then turns it ``t % 4`` quarter turns.
``ORDER`` lists the views so that each prefix that is offered is a group: 2 views (identity,
transpose), 4 (those and their half turns) and 8 (all). Averaging over a group makes the
prediction of a wafer seen through one of the group's views that view of the prediction.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from waferseg_core.errors import offered_count

A = TypeVar("A", bound=np.ndarray[Any, Any])

ORDER = (0, 4, 2, 6, 1, 5, 3, 7)
COUNTS = (1, 2, 4, 8)


def check(views: int) -> int:
    """``views`` if it is a count offered (else ``InvalidInputError``)."""
    return offered_count(views, COUNTS, "views")


def apply(a: A, t: int) -> A:
    """View ``t`` of an array whose last two axes are the die grid."""
    if t >= 4:
        a = np.swapaxes(a, -1, -2)
    out: A = np.rot90(a, t % 4, axes=(-2, -1))
    return out


def undo(a: A, t: int) -> A:
    """The inverse of :func:`apply` (back to the wafer's own orientation)."""
    out: A = np.rot90(a, -(t % 4), axes=(-2, -1))
    if t >= 4:
        out = np.swapaxes(out, -1, -2)
    return out
