"""Large wafers seen at a coarser die scale, so that every pattern fits in the model's view.

Patterns are defined by where they sit on the wafer (a ring along its edge, a disc at its
centre), but a convolutional network sees a bounded neighbourhood of dies. On a wafer hundreds
of dies across, a Donut or an Edge-Loc is far wider than that: the shipped model called their
arcs Loc and Edge-Ring (68% of Donut dies on wafers over 150 dies across). A wafer more than
``MAX_SIDE`` dies across is therefore reduced by the smallest integer factor ``k`` that brings
it within ``MAX_SIDE``: each k x k block of dies becomes one cell, on the wafer when any of its
dies is (so every die has a cell the model treats as wafer). Every die then takes the class
scores interpolated bilinearly between the on-wafer cells around its centre (``interpolate``),
so that an outline falls between cells rather than along block edges (on 279 validation
wafers over 96 dies across, mean IoU 0.796 -> 0.804 against each die taking its block's scores;
Scratch gains most). Training reduces large wafers the same way (masks by the commonest class
of each block's dies), so the model learns what inference shows it.

Whether a cell fails follows the share of its dies that fail along a ``RAMP``: never below its
low end, always from its high end, and in between with a probability that rises linearly, by
comparing the share with a fixed threshold per cell position spread evenly over the ramp. A
single threshold (the first rule, 40%) turned a dense Random wafer (half its dies failing) into
three quarters of failing cells, which the model read as Near-full; the ramp keeps a region's
fail density about what it was, as a small wafer with the same pattern would show it, and
still drops the lone fails of a clean wafer. The constants were chosen on synthetic validation
wafers (seeds 996-998; ``bench/coarse_scale.py``), not on the model card's test set.

A block grid puts every outline on its own block edges, give or take the interpolation. Seen
through several *phases* (the block grid moved by half a block down, right, or both: the wafer
padded with that many rows and columns of no die before it is reduced) and with the class
probabilities averaged over them, a wafer's outlines fall between the phases' block edges
(``Predictor(phases=N)``, ``phase_shifts``). On the 129 validation wafers of seed 996 over 96
dies across (shipped int8 model) mean IoU 0.888 with one phase, 0.894 with 2, 0.898 with 4, and
0.900 with all k x k shifts; 4 is offered as the most.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import NUM_CLASSES, PRIORITY
from waferseg_core.errors import offered_count

MAX_SIDE = 96
LEAST_MAX_SIDE = 32  # a model's own max side (train --max-side) is at least this
RAMP = (0.25, 0.65)
_SALT = np.uint64(0x632BE59BD9B4E019)  # so that no position hashes to 0 (the corner would)

# Tie-break between classes with as many dies in a block: the mask's own overlap priority.
_RANK = np.zeros(NUM_CLASSES)
for _r, _cid in enumerate(PRIORITY):
    _RANK[_cid] = (len(PRIORITY) - _r) / (2.0 * len(PRIORITY) + 2.0)


def factor(shape: tuple[int, ...], max_side: int | None = None) -> int:
    """The reduction factor of a grid of this shape (1: seen as it is).

    ``max_side`` is the model's (a model trained on other views carries its own in its
    metadata); None: the module's ``MAX_SIDE``.
    """
    side = MAX_SIDE if max_side is None else max_side
    return max(1, -(-max(shape[-2:]) // side))


def view(
    grid: npt.NDArray[np.uint8], max_side: int | None = None
) -> tuple[npt.NDArray[np.uint8], int]:
    """The grid the model sees, and its reduction factor (the grid itself and 1 when small)."""
    k = factor(grid.shape, max_side)
    return coarsen(grid, k), k


PHASES = (1, 2, 4)


def check_phases(phases: int) -> int:
    """``phases`` if it is a count offered (else ``InvalidInputError``)."""
    return offered_count(phases, PHASES, "phases")


def phase_shifts(k: int, phases: int) -> list[tuple[int, int]]:
    """Rows and columns of no die put before the wafer for each of ``phases`` block grids.

    The first is the plain grid; 2 adds the grid moved half a block along both axes, 4 also
    along each axis alone. A wafer seen as it is (``k`` 1) has only the plain grid.
    """
    if k == 1:
        return [(0, 0)]
    h = k // 2
    return [(0, 0), (h, h), (h, 0), (0, h)][: check_phases(phases)]


def shifted(grid: npt.NDArray[np.uint8], shift: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The grid after ``shift`` (rows, columns) of no die at its top and left."""
    dr, dc = shift
    out = np.zeros((grid.shape[0] + dr, grid.shape[1] + dc), np.uint8)
    out[dr:, dc:] = grid
    return out


@contextmanager
def constants(
    max_side: int | None = None, ramp: tuple[float, float] | None = None
) -> Iterator[None]:
    """Other constants for the duration (benchmarks; ``max_side=0``: every wafer at full scale).

    ``ramp=(t, t)`` is a single threshold: a cell fails when at least ``t`` of its dies do.
    Not for concurrent use: the constants are the module's.
    """
    global MAX_SIDE, RAMP
    before = MAX_SIDE, RAMP
    if max_side is not None:
        MAX_SIDE = max_side or 10**9
    if ramp is not None:
        if not 0.0 <= ramp[0] <= ramp[1] <= 1.0:
            raise ValueError(f"expected a ramp 0 <= low <= high <= 1, found {ramp}")
        RAMP = ramp
    try:
        yield
    finally:
        MAX_SIDE, RAMP = before


def thresholds(shape: tuple[int, int]) -> npt.NDArray[np.float64]:
    """A fixed value in [0, 1) per cell position, evenly spread (splitmix64 of the position).

    A hash of the position rather than a random generator, so that a wafer's view is the same
    on every machine and NumPy version, and a cell keeps its value whatever the grid's size.
    """
    r, c = np.indices(shape, dtype=np.uint64)
    x = r * np.uint64(0x9E3779B97F4A7C15) + c * np.uint64(0xD1B54A32D192ED03) + _SALT
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


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
    low, high = RAMP
    share = fail / np.maximum(on, 1)
    failing = (fail > 0) & (share >= low + (high - low) * thresholds(share.shape))
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


def interpolate(
    a: npt.NDArray[np.float32], k: int, shape: tuple[int, int], on: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """Per-cell scores (C, h, w) at every die (C, *shape), bilinear between cell centres.

    Only on-wafer cells (``on``, (h, w)) take part: an off-wafer cell's scores are whatever the
    model made of padding. A die whose neighbouring cells are all off the wafer takes its own
    block's scores. With ``k`` 1 the scores are returned as they are.
    """
    if k == 1:
        return a[:, : shape[0], : shape[1]]
    rows0, rows1, tr = _axis(shape[0], k, a.shape[-2])
    cols0, cols1, tc = _axis(shape[1], k, a.shape[-1])
    weight_on = on.astype(np.float32)
    total = np.zeros((a.shape[0], *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    for rows, wr in ((rows0, 1.0 - tr), (rows1, tr)):
        for cols, wc in ((cols0, 1.0 - tc), (cols1, tc)):
            w = np.outer(wr, wc).astype(np.float32) * weight_on[np.ix_(rows, cols)]
            total += a[:, rows][:, :, cols] * w
            norm += w
    out = np.where(norm > 1e-6, total / np.maximum(norm, 1e-6), spread(a, k, shape))
    return out.astype(np.float32)


def _axis(
    n: int, k: int, cells: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Dies 0..n-1 of one axis: the cells either side of each, and the weight of the second.

    Cell i's centre sits at die coordinate k * i + (k - 1) / 2.
    """
    pos = (np.arange(n) + 0.5) / k - 0.5
    before = np.clip(np.floor(pos).astype(np.intp), 0, cells - 1)
    after = np.clip(before + 1, 0, cells - 1)
    return before, after, np.clip(pos - before, 0.0, 1.0)


def spread(a: npt.NDArray[np.float32], k: int, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Per-cell values (..., h, w) back to every die (..., *shape): each die gets its block's."""
    if k == 1:
        return a[..., : shape[0], : shape[1]]
    full: npt.NDArray[np.float32] = np.repeat(np.repeat(a, k, axis=-2), k, axis=-1)
    return full[..., : shape[0], : shape[1]]
