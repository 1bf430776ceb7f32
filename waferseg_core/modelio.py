"""The model's input and output conventions, shared by training (torch) and inference (ONNX).

Input: a float32 tensor (C=4, H, W): one-hot die states (no die, pass, fail) and the die's
distance from the wafer centre (1 at the wafer's edge), so that Center, Donut and Edge patterns
are told apart by where they are. Grids are padded at the bottom/right to a multiple of
``PAD``, at least ``MIN_CANVAS``, with "no die". Outputs: per-die logits for the 9 mask classes,
logits for the 9 wafer labels (8 patterns + ``none``), and a pooled embedding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import WAFER_LABELS

PAD = 32
# The smallest canvas. The encoder's deepest stage is 1/16 of it: a 32-die canvas leaves 2x2
# cells there, all of them at the border, and the model read small wafers poorly (the
# 2026-11-27 GPU run called 0 of 21 small Near-full test wafers right: 21 of 21 on a 64-die
# canvas; real-wafer CV macro-F1 0.765 -> 0.800; MODEL_CARD.md "Small wafers").
MIN_CANVAS = 64
IN_CHANNELS = 4
NUM_LABELS = len(WAFER_LABELS)
IGNORE = 255  # target value for padding and off-wafer positions


def padded_size(n: int, multiple: int = PAD) -> int:
    """The canvas side for ``n`` dies: the least multiple of ``multiple`` >= n and >= MIN_CANVAS."""
    return max(MIN_CANVAS, -(-n // multiple) * multiple)


def radius_map(grid: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Each position's distance from the wafer centre, 1 at the edge of the die area."""
    rows, cols = grid.shape
    rs, cs = np.nonzero(grid)
    if rs.size == 0:
        return np.zeros(grid.shape, np.float32)
    r0, r1, c0, c1 = rs.min(), rs.max() + 1, cs.min(), cs.max() + 1
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    ry, rx = max((r1 - r0) / 2, 0.5), max((c1 - c0) / 2, 0.5)
    rr = (np.arange(rows, dtype=np.float32) + 0.5 - cy) / ry
    cc = (np.arange(cols, dtype=np.float32) + 0.5 - cx) / rx
    return np.asarray(np.sqrt(rr[:, None] ** 2 + cc[None, :] ** 2), np.float32)


def encode(
    grid: npt.NDArray[np.uint8], size: tuple[int, int] | None = None
) -> npt.NDArray[np.float32]:
    """The (4, H, W) input of one grid, padded to ``size`` (default: the next multiple of PAD)."""
    rows, cols = grid.shape
    h, w = size or (padded_size(rows), padded_size(cols))
    x = np.zeros((IN_CHANNELS, h, w), np.float32)
    x[0] = 1.0  # padding is "no die"
    x[0, :rows, :cols] = grid == 0
    x[1, :rows, :cols] = grid == 1
    x[2, :rows, :cols] = grid == 2
    x[3, :rows, :cols] = radius_map(grid)
    return x


def label_vector(patterns: list[str]) -> npt.NDArray[np.float32]:
    """Multi-hot wafer labels: the patterns present, or ``none`` alone."""
    v = np.zeros(NUM_LABELS, np.float32)
    for p in patterns or ["none"]:
        v[WAFER_LABELS.index(p)] = 1.0
    return v
