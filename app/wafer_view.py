"""The wafer viewer: the die grid crisp at every zoom, a class overlay, die readout."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPainter, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from app.render import grid_image, mask_image
from waferseg_core.wafer import WaferMap

ZOOM_STEP = 1.25


class WaferView(QGraphicsView):
    """Shows one wafer; die (r, c) is the scene square [c, c+1] x [r, r+1]."""

    die_hovered = Signal(int, int)  # canonical row, col (-1, -1 when off the grid)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setMouseTracking(True)
        self.setBackgroundBrush(Qt.GlobalColor.white)
        self._grid_item = QGraphicsPixmapItem()
        self._grid_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._mask_item = QGraphicsPixmapItem()
        self._mask_item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._mask_item.setOpacity(0.55)
        self.scene().addItem(self._grid_item)
        self.scene().addItem(self._mask_item)
        self.wafer: WaferMap | None = None
        self._auto_fit = True  # keep the wafer fitted on resize until the user zooms

    def show_wafer(self, wafer: WaferMap, mask: npt.NDArray[np.uint8] | None = None) -> None:
        """Display a wafer and, optionally, a class mask over it; fit it to the window."""
        self.wafer = wafer
        self._grid_item.setPixmap(QPixmap.fromImage(grid_image(wafer.grid)))
        self.set_mask(mask)
        self.scene().setSceneRect(-1, -1, wafer.cols + 2, wafer.rows + 2)
        self.fit()

    def set_mask(self, mask: npt.NDArray[np.uint8] | None) -> None:
        """Replace the class overlay (None hides it)."""
        if mask is None:
            self._mask_item.setPixmap(QPixmap())
        else:
            self._mask_item.setPixmap(QPixmap.fromImage(mask_image(mask)))

    def set_overlay_opacity(self, opacity: float) -> None:
        """Overlay opacity, 0-1."""
        self._mask_item.setOpacity(opacity)

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide the class overlay."""
        self._mask_item.setVisible(visible)

    def fit(self) -> None:
        """Fit the whole wafer in the window (and keep it fitted on resize)."""
        self._auto_fit = True
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def die_at(self, pos: QPointF) -> tuple[int, int]:
        """Canonical (row, col) under a viewport position, (-1, -1) off the grid."""
        if self.wafer is None:
            return -1, -1
        p = self.mapToScene(pos.toPoint())
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        if 0 <= r < self.wafer.rows and 0 <= c < self.wafer.cols:
            return r, c
        return -1, -1

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Zoom at the cursor."""
        factor = ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP
        self._auto_fit = False
        self.scale(factor, factor)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Refit on resize unless the user has zoomed."""
        super().resizeEvent(event)
        if self._auto_fit and self.wafer is not None:
            self.fit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Report the die under the cursor."""
        self.die_hovered.emit(*self.die_at(event.position()))
        super().mouseMoveEvent(event)
