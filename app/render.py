"""Die grids and class masks as QImages, one pixel per die (scaled crisply by the view)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PySide6.QtGui import QImage

from waferseg_core.classes import CLASSES

# ARGB colours of no die, pass and fail.
DIE_COLOURS = np.array([0x00FFFFFF, 0xFFC8CDD2, 0xFF2B2D42], dtype=np.uint32)
CLASS_COLOURS = np.array(
    [0x00000000] + [0xFF000000 | int(c.color[1:], 16) for c in CLASSES[1:]], dtype=np.uint32
)


def argb_image(argb: npt.NDArray[np.uint32]) -> QImage:
    """A QImage owning a copy of 32-bit ARGB pixels (one per die)."""
    data = np.ascontiguousarray(argb)
    h, w = data.shape
    img = QImage(data.data, w, h, 4 * w, QImage.Format.Format_ARGB32)
    return img.copy()  # own the pixels: the numpy buffer goes away


def grid_image(grid: npt.NDArray[np.uint8]) -> QImage:
    """The die grid: transparent off the wafer, light grey pass, dark fail."""
    return argb_image(DIE_COLOURS[grid])


def mask_image(mask: npt.NDArray[np.uint8]) -> QImage:
    """A class mask in the class colours, transparent background."""
    return argb_image(CLASS_COLOURS[mask])


def heat_image(values: npt.NDArray[np.floating], on: npt.NDArray[np.bool_], vmax: float) -> QImage:
    """A per-die heatmap (dark blue low -> yellow high), transparent off the wafer."""
    t = np.clip(values / max(vmax, 1e-9), 0.0, 1.0)
    r = (255 * np.clip(1.5 * t - 0.2, 0, 1)).astype(np.uint32)
    g = (255 * np.clip(1.2 * t, 0, 1)).astype(np.uint32)
    b = (255 * np.clip(1.0 - 1.3 * t + 0.3, 0, 1)).astype(np.uint32)
    argb = (0xFF << 24) | (r << 16) | (g << 8) | b
    return argb_image(np.where(on, argb, 0).astype(np.uint32))
