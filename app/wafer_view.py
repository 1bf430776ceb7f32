"""The wafer viewer: the die grid crisp at every zoom, a class overlay, die readout."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from app.render import grid_image, mask_image
from waferseg_core.wafer import WaferMap

ZOOM_STEP = 1.25


class WaferView(QGraphicsView):
    """Shows one wafer; die (r, c) is the scene square [c, c+1] x [r, r+1]."""

    die_hovered = Signal(int, int)  # canonical row, col (-1, -1 when off the grid)
    die_clicked = Signal(int, int)  # a left click on a die when no editor is attached

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
        self._draft_item = QGraphicsPathItem()
        pen = QPen(QColor("#111111"), 0)  # cosmetic: one pixel at every zoom
        self._draft_item.setPen(pen)
        self.scene().addItem(self._grid_item)
        self.scene().addItem(self._mask_item)
        self._points_item = QGraphicsPathItem()
        self._points_item.setPen(QPen(QColor("#d00000"), 0))
        self._points_item.setBrush(QColor("#d00000"))
        self.scene().addItem(self._draft_item)
        self.scene().addItem(self._points_item)
        self._pan_from: QPointF | None = None
        self._space = False
        self.editor: Any = None  # app.editor.Editor once the window wires one in
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

    def set_image(self, image: Any) -> None:
        """Show a ready QImage (a heatmap) as the overlay."""
        self._mask_item.setPixmap(QPixmap.fromImage(image))

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

    def set_points(self, points: list[tuple[float, float]]) -> None:
        """Small dots at these die-coordinate points (inspection defects); empty hides them."""
        path = QPainterPath()
        for x, y in points:
            path.addEllipse(QPointF(x, y), 0.12, 0.12)
        self._points_item.setPath(path)

    def _pan_by(self, pos: QPointF) -> None:
        assert self._pan_from is not None
        delta = pos - self._pan_from
        self._pan_from = pos
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
        self._auto_fit = False

    def keyPressEvent(self, event: Any) -> None:
        """Hold space to pan with the left button whatever the tool."""
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: Any) -> None:
        """Space released: back to the tool."""
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    def set_draft(self, points: list[tuple[float, float]]) -> None:
        """Show the outline being drawn (die coordinates)."""
        path = QPainterPath()
        for i, (x, y) in enumerate(points):
            if i == 0:
                path.moveTo(x, y)
            else:
                path.lineTo(x, y)
        for x, y in points:
            path.addEllipse(QPointF(x, y), 0.15, 0.15)
        self._draft_item.setPath(path)

    def _editing(self, event: QMouseEvent) -> bool:
        """Left-button events go to the editor unless the select tool pans."""
        return (
            self.editor is not None
            and event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
            and self.editor.tool != "select"
        )

    def _scene_xy(self, event: QMouseEvent) -> tuple[float, float]:
        p = self.mapToScene(event.position().toPoint())
        return float(p.x()), float(p.y())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Tools get left clicks; the middle button (or space + left) pans."""
        if event.button() == Qt.MouseButton.MiddleButton or (
            self._space and event.button() == Qt.MouseButton.LeftButton
        ):
            self._pan_from = event.position()
            return
        if self.editor is not None and event.button() == Qt.MouseButton.LeftButton:
            taken = self.editor.press(*self._scene_xy(event))
            if taken or self.editor.tool != "select":
                return  # a vertex or region drag, or a drawing tool: no panning
        if self.editor is None and event.button() == Qt.MouseButton.LeftButton:
            r, c = self.die_at(event.position())
            if r >= 0:
                self.die_clicked.emit(r, c)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """A double-click closes the polygon being drawn, or (select tool) inserts a vertex."""
        if self._editing(event):
            self.editor.finish()
            return
        if self.editor is not None and self.editor.tool == "select":
            self.editor.insert_vertex(*self._scene_xy(event))
            return
        super().mouseDoubleClickEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """The end of a brush stroke or a drag."""
        if self._pan_from is not None:
            self._pan_from = None
            return
        if self._editing(event) or (self.editor is not None and self.editor.dragging):
            self.editor.release()
            return
        super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Report the die under the cursor; feed a brush stroke or a drag."""
        self.die_hovered.emit(*self.die_at(event.position()))
        if self._pan_from is not None:
            self._pan_by(event.position())
            return
        if (
            self.editor is not None
            and event.buttons() & Qt.MouseButton.LeftButton
            and (self.editor.tool != "select" or self.editor.dragging)
        ):
            self.editor.move(*self._scene_xy(event))
            return
        super().mouseMoveEvent(event)
