"""The main window's Review, Analysis and Training menus and the lot export (a mixin).

Each tool is its own top-level window, created on first use and kept, so a reviewer can keep
the review window beside the main one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QThread
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QProgressDialog, QWidget

from app.al_panel import ALPanel
from app.dashboard import DashboardWindow
from app.export_worker import ExportWorker
from app.review_view import ReviewWindow
from app.similar_panel import SimilarPanel
from app.training_monitor import TrainingMonitor

EXPORTS = {
    "coco": ("COCO dataset (folder)…", True, ""),
    "csv": ("CSV, one row per wafer…", False, "CSV (*.csv)"),
    "g85": ("SEMI G85 inked maps…", False, "G85 XML (*.xml)"),
    "e142": ("SEMI E142 inked maps…", False, "E142 XML (*.xml)"),
    "stdf": ("STDF V4 inked maps…", False, "STDF (*.stdf)"),
    "klarf": ("KLARF, defects classified by pattern…", False, "KLARF (*.klarf *.000)"),
    "sinf": ("SINF inked maps (folder)…", True, ""),
    "tsk": ("TSK inked maps (folder)…", True, ""),
    "png": ("PNG class masks (folder)…", True, ""),
}


class ToolsMixin:
    """Menus and windows: review, dashboard, training, active learning, similar wafers, export."""

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
            ("&Analysis", "Similar wafers…", "Ctrl+Shift+F", self.open_similar),
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

    def open_similar(self) -> SimilarPanel:
        """The stored wafers most like the one shown, under the current model."""
        win: Any = self

        def make() -> SimilarPanel:
            panel = SimilarPanel(self.store, self.user, self.predictor)
            panel.open_wafer.connect(self.show_wafer_of_lot)
            return panel

        panel: SimilarPanel = self._show("similar", make)
        panel.predictor = self.predictor
        wafer_id = win.current_wafer_id()
        if wafer_id < 0:
            panel.status.setText("open a wafer first: the search ranks wafers against it")
        else:
            item = win.browser.currentItem()
            key = item.text(0) if item is not None else str(wafer_id)
            panel.search(wafer_id, f"{win.lot_box.currentText()} / wafer {key}")
        return panel

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
        # Direct: queued, stop would wait in the busy worker thread until the export is over.
        dialog.canceled.connect(worker.stop, Qt.ConnectionType.DirectConnection)
        # The window's methods, not lambdas: PySide runs a lambda in the emitting (worker)
        # thread, and widgets must only be touched from the GUI thread.
        worker.progress.connect(self._on_export_progress)
        worker.done.connect(self._on_exported)
        worker.failed.connect(self._on_export_failed)
        for sig in (worker.done, worker.failed):
            sig.connect(dialog.reset)
            sig.connect(thread.quit)
        thread.started.connect(worker.run)
        self._export = (thread, worker, dialog)
        thread.start()
        return worker

    def _on_export_progress(self, done: int, total: int) -> None:
        dialog = self._export[2]
        dialog.setMaximum(total)
        dialog.setValue(done)

    def _on_exported(self, summary: dict[str, Any]) -> None:
        win: Any = self
        win.statusBar().showMessage(
            f"exported {summary['wafers']} wafers of {summary['lot']} to {summary['out']}", 8000
        )

    def _on_export_failed(self, message: str) -> None:
        win: Any = self
        win.statusBar().showMessage(message, 8000)
