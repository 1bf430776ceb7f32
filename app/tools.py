"""The main window's Review, Analysis and Training menus and the lot export (a mixin).

Each tool is its own top-level window, created on first use and kept, so a reviewer can keep
the review window beside the main one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QThread
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QProgressDialog, QWidget

from app.al_panel import ALPanel
from app.dashboard import DashboardWindow
from app.export_worker import ExportWorker
from app.review_view import ReviewWindow
from app.training_monitor import TrainingMonitor

EXPORTS = {
    "coco": ("COCO dataset (folder)…", True, ""),
    "csv": ("CSV, one row per wafer…", False, "CSV (*.csv)"),
    "g85": ("SEMI G85 inked maps…", False, "G85 XML (*.xml)"),
    "e142": ("SEMI E142 inked maps…", False, "E142 XML (*.xml)"),
    "png": ("PNG class masks (folder)…", True, ""),
}


class ToolsMixin:
    """Menus and windows for review, dashboard, training, active learning and exports."""

    store: Any
    user: Any
    predictor: Any
    tools: dict[str, QWidget]

    def _make_tools_menus(self, file_menu: QMenu) -> None:
        self.tools = {}
        win: Any = self
        export = file_menu.addMenu("Export lot")
        for kind, (label, _, _) in EXPORTS.items():
            act = QAction(label, win)
            act.triggered.connect(lambda _=False, k=kind: self._export_dialog(k))
            export.addAction(act)
        entries = [
            ("&Review", "Compare annotators…", "Ctrl+Shift+R", self.open_review),
            ("&Analysis", "Dashboard…", "Ctrl+Shift+D", self.open_dashboard),
            ("&Analysis", "Active-learning queue…", "Ctrl+Shift+A", self.open_al),
            ("&Analysis", "Training monitor…", "Ctrl+Shift+T", self.open_training),
        ]
        menus: dict[str, QMenu] = {}
        for menu_name, label, keys, slot in entries:
            menu = menus.get(menu_name) or win.menuBar().addMenu(menu_name)
            menus[menu_name] = menu
            act = QAction(label, win)
            act.setShortcut(QKeySequence(keys))
            act.triggered.connect(slot)
            menu.addAction(act)

    def _show(self, key: str, make: Any) -> Any:
        w = self.tools.get(key)
        if w is None:
            w = self.tools[key] = make()
        w.show()
        w.raise_()
        return w

    def open_review(self) -> ReviewWindow:
        """The review window, on the current lot."""
        win: Any = self
        lot = win.lot_box.currentText()

        def make() -> ReviewWindow:
            w = ReviewWindow(self.store, self.user, lot)
            w.consensus_saved.connect(lambda _: win.reload_current())
            return w

        w: ReviewWindow = self._show("review", make)
        if w.lot_box.currentText() != lot:
            w.lot_box.setCurrentText(lot)
        return w

    def open_dashboard(self) -> DashboardWindow:
        """The dashboard under the current model."""
        w: DashboardWindow = self._show(
            "dashboard", lambda: DashboardWindow(self.store, self.user, self.predictor)
        )
        w.predictor = self.predictor
        return w

    def open_training(self) -> TrainingMonitor:
        """The training monitor."""
        return self._show("training", lambda: TrainingMonitor(self.store, self.user))  # type: ignore[no-any-return]

    def open_al(self) -> ALPanel:
        """The active-learning queue; its wafers open here."""

        def make() -> ALPanel:
            panel = ALPanel(self.store, self.user, self.predictor)
            panel.open_wafer.connect(self.show_wafer_of_lot)
            return panel

        return self._show("al", make)  # type: ignore[no-any-return]

    def show_wafer_of_lot(self, lot: str, wafer_key: str) -> bool:
        """Switch to a lot and show one of its wafers."""
        win: Any = self
        if win.lot_box.currentText() != lot:
            win.lot_box.setCurrentText(lot)
        win.raise_()
        return bool(win.select_wafer(wafer_key))

    # ---- export ----------------------------------------------------------------------------------

    def _export_dialog(self, kind: str) -> None:
        label, folder, filt = EXPORTS[kind]
        win: Any = self
        if folder:
            path = QFileDialog.getExistingDirectory(win, label.rstrip("…"))
            if path:
                # A new folder inside the chosen one: exports never mix with existing files.
                path = f"{path}/{win.lot_box.currentText()}-{kind}"
        else:
            path, _ = QFileDialog.getSaveFileName(win, label.rstrip("…"), "", filt)
        if path:
            self.export_lot(kind, path)

    def export_lot(self, kind: str, path: str) -> ExportWorker:
        """Export the current lot in a worker thread with a progress dialog."""
        win: Any = self
        thread = QThread(win)
        worker = ExportWorker(
            self.store, self.user, win.lot_box.currentText(), kind, path, str(self.predictor.path)
        )
        worker.moveToThread(thread)
        dialog = QProgressDialog(f"Exporting {kind.upper()}…", "Cancel", 0, 0, win)
        dialog.setWindowTitle("Export")
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(worker.stop)
        worker.progress.connect(lambda d, t: (dialog.setMaximum(t), dialog.setValue(d)))
        worker.done.connect(
            lambda s: win.statusBar().showMessage(
                f"exported {s['wafers']} wafers of {s['lot']} to {s['out']}", 8000
            )
        )
        worker.failed.connect(lambda msg: win.statusBar().showMessage(msg, 8000))
        for sig in (worker.done, worker.failed):
            sig.connect(dialog.reset)
            sig.connect(thread.quit)
        thread.started.connect(worker.run)
        self._export = (thread, worker, dialog)
        thread.start()
        return worker
