"""Large wafers seen at a coarser die scale, so that every pattern fits in the model's view.

Patterns are defined by where they sit on the wafer (a ring along its edge, a disc at its
centre), but a convolutional network sees a bounded neighbourhood of dies. On a wafer hundreds
of dies across, a Donut or an Edge-Loc is far wider than that: the shipped model called their
arcs Loc and Edge-Ring (68% of Donut dies on wafers over 150 dies across). A wafer more than
``MAX_SIDE`` dies across is therefore reduced by the smallest integer factor ``k`` that brings
it within ``MAX_SIDE``: each k x k block of dies becomes one cell, on the wafer when any of its
dies is (so every die has a cell the model treats as wafer), failing when at least
``FAIL_SHARE`` of its dies on the wafer fail. Every die then takes its block's prediction.
Training reduces large wafers the same way (masks by the commonest class of each block's dies),
so the model learns what inference shows it. Both constants were chosen on a synthetic
validation set (seed 998), not on the model card's test set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import NUM_CLASSES, PRIORITY

MAX_SIDE = 96
FAIL_SHARE = 0.4

# Tie-break between classes with as many dies in a block: the mask's own overlap priority.
_RANK = np.zeros(NUM_CLASSES)
for _r, _cid in enumerate(PRIORITY):
    _RANK[_cid] = (len(PRIORITY) - _r) / (2.0 * len(PRIORITY) + 2.0)


def factor(shape: tuple[int, ...]) -> int:
    """The reduction factor of a grid of this shape (1: seen as it is)."""
    return max(1, -(-max(shape[-2:]) // MAX_SIDE))


def view(grid: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], int]:
    """The grid the model sees, and its reduction factor (the grid itself and 1 when small)."""
    k = factor(grid.shape)
    return coarsen(grid, k), k


@contextmanager
def constants(max_side: int | None = None, fail_share: float | None = None) -> Iterator[None]:
    """Other constants for the duration (benchmarks; ``max_side=0``: every wafer at full scale).

    Not for concurrent use: the constants are the module's.
    """
    global MAX_SIDE, FAIL_SHARE
    before = MAX_SIDE, FAIL_SHARE
    if max_side is not None:
        MAX_SIDE = max_side or 10**9
    if fail_share is not None:
        FAIL_SHARE = fail_share
    try:
        yield
    finally:
        MAX_SIDE, FAIL_SHARE = before


def _blocks(a: npt.NDArray[np.uint8], k: int) -> npt.NDArray[np.uint8]:
    """(h, w) -> (h/k, k, w/k, k) after padding with zeros to a multiple of k."""
    rows, cols = -(-a.shape[0] // k) * k, -(-a.shape[1] // k) * k
    out = np.zeros((rows, cols), a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    return out.reshape(rows // k, k, cols // k, k)


def coarsen(grid: npt.NDArray[np.uint8], k: int) -> npt.NDArray[np.uint8]:
    """The grid with each k x k block as one die (0 no die, 1 pass, 2 fail)."""
    if k == 1:
        return grid
    b = _blocks(grid, k)
    on = (b > 0).sum((1, 3))
    fail = (b == 2).sum((1, 3))
    # A block on the wafer has at least one die, so a failing share implies a failing die.
    failing = fail >= FAIL_SHARE * np.maximum(on, 1)
    return np.where(on > 0, np.where(failing, 2, 1), 0).astype(np.uint8)


def coarsen_mask(
    mask: npt.NDArray[np.uint8], grid: npt.NDArray[np.uint8], k: int
) -> npt.NDArray[np.uint8]:
    """Each block's commonest class among its dies on the wafer (ties: the higher priority)."""
    if k == 1:
        return mask
    on = _blocks((grid > 0).astype(np.uint8), k)
    labels = _blocks(mask, k)
    h, w = on.shape[0], on.shape[2]
    counts = np.zeros((NUM_CLASSES, h, w))
    for c in range(NUM_CLASSES):
        counts[c] = ((labels == c) & (on > 0)).sum((1, 3))
    out: npt.NDArray[np.uint8] = (
        (counts + _RANK[:, None, None] * (counts > 0)).argmax(0).astype(np.uint8)
    )
    out[counts.sum(0) == 0] = 0
    return out


def spread(a: npt.NDArray[np.float32], k: int, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Per-cell values (..., h, w) back to every die (..., *shape): each die gets its block's."""
    if k == 1:
        return a[..., : shape[0], : shape[1]]
    full: npt.NDArray[np.float32] = np.repeat(np.repeat(a, k, axis=-2), k, axis=-1)
    return full[..., : shape[0], : shape[1]]
