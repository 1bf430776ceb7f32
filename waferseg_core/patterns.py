"""Wafer-level pattern labels derived from a die-level class mask.

A class is *present* on a wafer when it holds at least ``MIN_DIES`` dies and at least
``MIN_FRACTION`` of the wafer's dies. The wafer's pattern is the present class with the most
dies, or ``none`` when no class is present; mixed-type wafers list every present class, most
dies first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES, NONE_PATTERN, NUM_CLASSES
from waferseg_core.errors import InvalidInputError

MIN_DIES = 3
MIN_FRACTION = 0.005


def class_die_counts(mask: npt.NDArray[np.integer], grid: npt.NDArray[np.uint8]) -> list[int]:
    """Dies per class id (index 0-8), counting only dies on the wafer."""
    if mask.shape != grid.shape:
        raise InvalidInputError(f"mask shape {mask.shape} differs from grid shape {grid.shape}")
    on = grid > 0
    return [int(v) for v in np.bincount(mask[on].astype(np.int64), minlength=NUM_CLASSES)]


def patterns_from_mask(
    mask: npt.NDArray[np.integer],
    grid: npt.NDArray[np.uint8],
    *,
    min_dies: int = MIN_DIES,
    min_fraction: float = MIN_FRACTION,
) -> list[str]:
    """Names of the classes present on the wafer, most dies first (empty: none)."""
    return patterns_from_counts(
        class_die_counts(mask, grid),
        int(np.count_nonzero(grid)),
        min_dies=min_dies,
        min_fraction=min_fraction,
    )


def patterns_from_counts(
    counts: Sequence[int],
    wafer_dies: int,
    *,
    min_dies: int = MIN_DIES,
    min_fraction: float = MIN_FRACTION,
) -> list[str]:
    """``patterns_from_mask`` from dies per class id and the wafer's die count.

    For a caller that has the counts already (the inference engine counts once per wafer).
    """
    need = max(min_dies, min_fraction * max(1, wafer_dies))
    present = [(n, i) for i, n in enumerate(counts) if i > 0 and n >= need]
    present.sort(key=lambda t: (-t[0], t[1]))
    return [CLASSES[i].name for _, i in present]


def pattern_from_mask(mask: npt.NDArray[np.integer], grid: npt.NDArray[np.uint8]) -> str:
    """The wafer's single pattern label: the present class with the most dies, or ``none``."""
    found = patterns_from_mask(mask, grid)
    return found[0] if found else NONE_PATTERN
