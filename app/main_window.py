"""The main window: lot browser, wafer viewer, class legend, overlay controls."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QColor, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSlider,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from app.wafer_view import WaferView
from waferseg_core.classes import PATTERN_CLASSES
from waferseg_core.coco import CocoWafer, mask_from_annotations
from waferseg_core.patterns import pattern_from_mask

STATE_NAMES = {0: "no die", 1: "pass", 2: "fail"}


class MainWindow(QMainWindow):
    """Browse a lot's wafers and look at each with its annotations."""

    def __init__(self, lot_name: str, wafers: list[CocoWafer], settings: QSettings) -> None:
        super().__init__()
        self.setWindowTitle(f"WaferSeg Studio — {lot_name}")
        self._settings = settings
        self.wafers = wafers
        self.masks = [mask_from_annotations(w.annotations, w.wafer) for w in wafers]
        self.view = WaferView(self)
        self.setCentralWidget(self.view)
        self.browser = self._make_browser()
        self._make_legend()
        self._make_toolbar()
        self.view.die_hovered.connect(self._show_die)
        self.browser.currentItemChanged.connect(self._open_current)
        state = settings.value("window/state")
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)  # type: ignore[arg-type]
        if state is not None:
            self.restoreState(state)  # type: ignore[arg-type]
        if self.browser.topLevelItemCount():
            self.browser.setCurrentItem(self.browser.topLevelItem(0))

    def _make_browser(self) -> QTreeWidget:
        tree = QTreeWidget()
        tree.setHeaderLabels(["Wafer", "Pattern", "Fail %", "Dies"])
        tree.setRootIsDecorated(False)
        tree.setSortingEnabled(True)
        for i, (cw, mask) in enumerate(zip(self.wafers, self.masks, strict=True)):
            w = cw.wafer
            fail_pct = 100.0 * w.fail_dies / max(1, w.dies)
            item = _SortableItem(
                [w.wafer_id, pattern_from_mask(mask, w.grid), f"{fail_pct:.1f}", str(w.dies)]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, i)
            tree.addTopLevelItem(item)
        # Worst first: the highest fail fraction at the top.
        tree.sortItems(2, Qt.SortOrder.DescendingOrder)
        dock = QDockWidget("Lot browser", self)
        dock.setObjectName("lot_browser")
        dock.setWidget(tree)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        return tree

    def _make_legend(self) -> None:
        legend = QListWidget()
        for c in PATTERN_CLASSES:
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(c.color))
            legend.addItem(QListWidgetItem(swatch, f"{c.key}  {c.name}"))
        dock = QDockWidget("Classes", self)
        dock.setObjectName("classes")
        dock.setWidget(legend)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

    def _make_toolbar(self) -> None:
        bar = QToolBar("View", self)
        bar.setObjectName("view_toolbar")
        self.overlay_action = QAction("Annotations", self, checkable=True, checked=True)
        self.overlay_action.setShortcut(QKeySequence("O"))
        self.overlay_action.toggled.connect(self.view.set_overlay_visible)
        bar.addAction(self.overlay_action)
        fit = QAction("Fit", self)
        fit.setShortcut(QKeySequence("F"))
        fit.triggered.connect(self.view.fit)
        bar.addAction(fit)
        bar.addWidget(QLabel(" Opacity "))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setMaximumWidth(120)
        self.opacity.valueChanged.connect(lambda v: self.view.set_overlay_opacity(v / 100))
        bar.addWidget(self.opacity)
        for key, step in ((Qt.Key.Key_PageDown, 1), (Qt.Key.Key_PageUp, -1)):
            act = QAction(self)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(lambda _=False, s=step: self.step_wafer(s))
            self.addAction(act)
        self.addToolBar(bar)

    def step_wafer(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) wafer in the browser's order."""
        row = self.browser.indexOfTopLevelItem(self.browser.currentItem()) + step
        if 0 <= row < self.browser.topLevelItemCount():
            self.browser.setCurrentItem(self.browser.topLevelItem(row))

    def select_wafer(self, wafer_id: str) -> bool:
        """Show the wafer with this id; False when the lot has none."""
        for row in range(self.browser.topLevelItemCount()):
            item = self.browser.topLevelItem(row)
            if item.text(0) == wafer_id:
                self.browser.setCurrentItem(item)
                return True
        return False

    def current_index(self) -> int:
        """Index into ``wafers`` of the wafer shown."""
        item = self.browser.currentItem()
        return int(item.data(0, Qt.ItemDataRole.UserRole)) if item else -1

    def _open_current(
        self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None
    ) -> None:
        if item is None:
            return
        i = int(item.data(0, Qt.ItemDataRole.UserRole))
        self.view.show_wafer(self.wafers[i].wafer, self.masks[i])

    def _show_die(self, row: int, col: int) -> None:
        i = self.current_index()
        if row < 0 or i < 0:
            self.statusBar().clearMessage()
            return
        w = self.wafers[i].wafer
        x, y = w.canonical_to_file(row, col)
        cls = PATTERN_CLASSES[self.masks[i][row, col] - 1].name if self.masks[i][row, col] else "—"
        state = STATE_NAMES[int(w.grid[row, col])]
        text = f"die r{row} c{col}   file x={x} y={y}   {state}   class {cls}"
        self.statusBar().showMessage(text)

    def closeEvent(self, event: object) -> None:  # noqa: D102 - Qt override
        self._settings.setValue("window/geometry", self.saveGeometry())
        self._settings.setValue("window/state", self.saveState())
        super().closeEvent(event)  # type: ignore[arg-type]


class _SortableItem(QTreeWidgetItem):
    """Sorts numeric columns as numbers."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        col = self.treeWidget().sortColumn() if self.treeWidget() else 0
        try:
            return float(self.text(col)) < float(other.text(col))
        except ValueError:
            return self.text(col) < other.text(col)


def make_window(wafers: list[CocoWafer], lot_name: str, settings: QSettings) -> MainWindow:
    """Build the main window for a lot (the tests use this too)."""
    return MainWindow(lot_name, wafers, settings)


__all__ = ["MainWindow", "QWidget", "make_window"]
