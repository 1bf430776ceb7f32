"""Stacked wafer maps: per die position, the share of a lot's wafers failing there (or in a class).

A lot's wafers of one product share their die grid, so stacking them shows where on the wafer
fails gather (an edge ring of a chamber, a spot under a chuck pin) better than any one wafer.
Wafers whose grid has another shape than the lot's commonest one cannot be stacked die for die;
they are left out and counted. A position counts a wafer only where that wafer has a die there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import NUM_CLASSES
from waferseg_core.errors import InvalidInputError
from waferseg_core.wafer import FAIL

Shares = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StackedMap:
    """The stacked figures of a lot.

    Attributes:
        shape: The die grid stacked (the lot's commonest).
        wafers: Wafers stacked.
        left_out: Wafers of another grid shape, not stacked.
        present: Per position, the stacked wafers with a die there.
        fail_share: Per position, the share of those wafers failing there (NaN: no die on any).
        class_share: (9, rows, cols): per class id, the share of them whose mask holds the
            class there (NaN as above); None when no masks were given.
    """

    shape: tuple[int, int]
    wafers: int
    left_out: int
    present: npt.NDArray[np.int64]
    fail_share: Shares
    class_share: Shares | None

    def share(self, class_id: int | None) -> Shares:
        """The fail share (``None``) or one class's share."""
        if class_id is None:
            return self.fail_share
        if self.class_share is None:
            raise InvalidInputError("this stack was made without masks; expected masks for it")
        if not 0 < class_id < NUM_CLASSES:
            raise InvalidInputError(f"class id must be within 1-8, found {class_id}")
        share: Shares = self.class_share[class_id]
        return share


def stack(
    grids: Sequence[npt.NDArray[np.uint8]],
    masks: Sequence[npt.NDArray[np.integer]] | None = None,
) -> StackedMap:
    """Stack die grids (and their class masks) of the lot's commonest shape.

    Raises:
        InvalidInputError: No grids, or masks that do not pair with the grids.
    """
    if not grids:
        raise InvalidInputError("expected at least one wafer to stack, found none")
    if masks is not None and len(masks) != len(grids):
        raise InvalidInputError(f"expected a mask per wafer ({len(grids)}), found {len(masks)}")
    # Ties go to the shape seen first, so the same lot always stacks the same way.
    shape = Counter(g.shape for g in grids).most_common(1)[0][0]
    keep = [i for i, g in enumerate(grids) if g.shape == shape]
    for i in keep:
        if masks is not None and masks[i].shape != shape:
            raise InvalidInputError(
                f"wafer {i}: expected its mask of shape {shape}, found {masks[i].shape}"
            )
    present = np.zeros(shape, np.int64)
    fails = np.zeros(shape, np.int64)
    per_class = np.zeros((NUM_CLASSES, *shape), np.int64) if masks is not None else None
    for i in keep:
        on = grids[i] > 0
        present += on
        fails += grids[i] == FAIL
        if per_class is not None and masks is not None:
            for c in range(1, NUM_CLASSES):
                per_class[c] += on & (masks[i] == c)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(present > 0, present, np.nan)
        fail_share = fails / denom
        class_share = per_class / denom if per_class is not None else None
    return StackedMap(
        shape=(int(shape[0]), int(shape[1])),
        wafers=len(keep),
        left_out=len(grids) - len(keep),
        present=present,
        fail_share=fail_share,
        class_share=class_share,
    )
