"""The main window: lots and wafers from the store, the wafer viewer, overlays, predictions."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings, Qt, QThread, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QSlider,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.dialogs import SettingsDialog
from app.editor import Editor
from app.import_worker import ImportWorker
from app.predict_worker import PredictWorker
from app.readout import bin_text, defects_by_die, defects_text
from app.render import grid_image, heat_image
from app.tools import ToolsMixin
from app.wafer_view import WaferView
from waferseg_core import coarse
from waferseg_core import settings as prefs_io
from waferseg_core.classes import PATTERN_CLASSES
from waferseg_core.errors import WaferSegError
from waferseg_core.geometry import mask_from_geometry
from waferseg_core.inference import DEFAULT_FP32, DEFAULT_MODEL, Predictor
from waferseg_core.store.service import Store, UserRef
from waferseg_core.wafer import Defect, WaferMap

STATE_NAMES = {0: "no die", 1: "pass", 2: "fail"}
COLUMNS = ["Wafer", "Pattern", "Conf.", "Unc.", "Fail %", "Status"]
COLUMN_TIPS = {
    2: "the model's probability of the pattern called (its wafer-level head)",
    3: "mean entropy of the dies' class probabilities (nats): how much the mask is in doubt",
}
# Saved window layouts of another version are not restored: version 1 gave the edit toolbar
# a row of its own (an older layout would put it back where its buttons overflowed).
LAYOUT_VERSION = 1
BROWSER_WIDTH = 440  # pixels: the six columns of a lot with 3-digit wafer ids and "Edge-Ring"
FAIL_COL, STATUS_COL = 4, 5


class MainWindow(ToolsMixin, QMainWindow):
    """Browse the store's lots, look at wafers with annotations and predictions."""

    lot_predicted = Signal(float)  # ms for the whole lot
    import_finished = Signal(dict, list)  # {lot: wafers}, ["file: error", ...]
    MAX_RECENT = 10

    def __init__(
        self,
        store: Store,
        user: UserRef,
        predictor: Predictor,
        settings: QSettings,
        prefs: prefs_io.Settings | None = None,
    ) -> None:
        super().__init__()
        self.prefs = prefs or prefs_io.Settings()
        self.store, self.user, self.predictor, self._settings = store, user, predictor, settings
        self.setWindowTitle(f"WaferSeg Studio — {user.name} ({user.role})")
        self.view = WaferView(self)
        self.setCentralWidget(self.view)
        self.editor = Editor(store, user)
        self.view.editor = self.editor
        self.editor.mask_changed.connect(self._on_edited)
        self.editor.draft_changed.connect(lambda: self.view.set_draft(self.editor.draft))
        self.editor.conflict.connect(self._show_conflict)
        self.predictions: dict[int, dict[str, Any]] = {}
        self._items: dict[int, QTreeWidgetItem] = {}
        self._wafer: WaferMap | None = None
        self._defects_at: dict[tuple[int, int], list[Defect]] = {}  # the shown wafer's, by die
        self._wafer_id = -1
        self._thread: QThread | None = None
        self._worker: PredictWorker | None = None
        self._make_browser()
        self._make_legend()
        self._make_file_menu()
        self._make_model_selector()
        self._make_toolbar()
        self._make_edit_toolbar()
        self.setAcceptDrops(True)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        self.statusBar().addPermanentWidget(self.progress)
        self.view.die_hovered.connect(self._show_die)
        geometry, state = settings.value("window/geometry"), settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)  # type: ignore[arg-type]
        if state is None or not self.restoreState(state, LAYOUT_VERSION):  # type: ignore[arg-type]
            # First run, or a layout saved by an older version: the default one, with a browser
            # wide enough for its six columns (the user may resize it).
            self.resizeDocks([self.browser_dock], [BROWSER_WIDTH], Qt.Orientation.Horizontal)
        self.editor.brush_radius = self.prefs.brush_radius
        self.opacity.setValue(round(self.prefs.overlay_opacity * 100))
        self.refresh_lots()

    # ---- building -----------------------------------------------------------------------------

    def _make_browser(self) -> None:
        self.lot_box = QComboBox()
        self.lot_box.currentTextChanged.connect(self.open_lot)
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText("filter: wafer, pattern or status")
        self.filter_box.textChanged.connect(lambda _: self._apply_filter())
        self.browser = QTreeWidget()
        self.browser.setHeaderLabels(COLUMNS)
        for col, tip in COLUMN_TIPS.items():
            self.browser.headerItem().setToolTip(col, tip)
        self.browser.setRootIsDecorated(False)
        self.browser.setSortingEnabled(True)
        self.browser.currentItemChanged.connect(self._open_current)
        self.browser_dock = self._dock(
            "Lot browser",
            "lot_browser",
            Qt.DockWidgetArea.LeftDockWidgetArea,
            [self.lot_box, self.filter_box, self.browser],
        )

    def _fit_browser(self) -> None:
        """Columns as wide as their contents, so that every column shows without scrolling."""
        for c in range(len(COLUMNS)):
            self.browser.resizeColumnToContents(c)

    def _dock(
        self, title: str, name: str, area: Qt.DockWidgetArea, widgets: list[QWidget]
    ) -> QDockWidget:
        """A dock holding the widgets in a column (its object name keeps the layout across runs)."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(2, 2, 2, 2)
        for w in widgets:
            lay.addWidget(w)
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(box)
        self.addDockWidget(area, dock)
        return dock

    def _make_legend(self) -> None:
        legend = QListWidget()
        for c in PATTERN_CLASSES:
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(c.color))
            legend.addItem(QListWidgetItem(swatch, f"{c.key}  {c.name}"))
        self.region_list = QListWidget()
        self.region_list.itemClicked.connect(self._region_clicked)
        self.prediction_label = QLabel("")
        self.prediction_label.setWordWrap(True)
        self._dock(
            "Classes",
            "classes",
            Qt.DockWidgetArea.RightDockWidgetArea,
            [
                legend,
                QLabel("<b>Annotations</b>"),
                self.region_list,
                QLabel("<b>Prediction</b>"),
                self.prediction_label,
            ],
        )

    def _make_toolbar(self) -> None:
        bar = QToolBar("View", self)
        bar.setObjectName("view_toolbar")
        group = QActionGroup(self)
        self.show_annotations = QAction("Annotations", self, checkable=True, checked=True)
        self.show_annotations.setShortcut(QKeySequence("A"))
        self.show_prediction = QAction("Prediction", self, checkable=True)
        self.show_prediction.setShortcut(QKeySequence("P"))
        self.show_nothing = QAction("Dies only", self, checkable=True)
        self.show_nothing.setShortcut(QKeySequence("D"))
        self.show_confidence = QAction("Confidence", self, checkable=True)
        self.show_confidence.setShortcut(QKeySequence("C"))
        self.show_entropy = QAction("Entropy", self, checkable=True)
        self.show_entropy.setShortcut(QKeySequence("U"))
        for act in (
            self.show_annotations,
            self.show_prediction,
            self.show_confidence,
            self.show_entropy,
            self.show_nothing,
        ):
            group.addAction(act)
            bar.addAction(act)
            act.toggled.connect(lambda _=False: self._update_overlay())
        self.show_defects = QAction("Defects", self, checkable=True, checked=True)
        self.show_defects.setToolTip("inspection defects of KLARF files (K)")
        self.show_defects.setShortcut(QKeySequence("K"))
        self.show_defects.toggled.connect(lambda _=False: self._update_overlay())
        bar.addAction(self.show_defects)
        bar.addSeparator()
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
            act.triggered.connect(lambda _=False, s=step: self.step_wafer(s))
            self.addAction(act)
        self.addToolBar(bar)

    def _make_file_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        open_files = QAction("Open files…", self)
        open_files.setShortcut(QKeySequence.StandardKey.Open)
        open_files.triggered.connect(self._open_files_dialog)
        open_folder = QAction("Open folder…", self)
        open_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        open_folder.triggered.connect(self._open_folder_dialog)
        menu.addAction(open_files)
        menu.addAction(open_folder)
        self.recent_menu = menu.addMenu("Recent")
        self._fill_recent()
        menu.addSeparator()
        prefs = QAction("Settings…", self)
        prefs.setShortcut(QKeySequence("Ctrl+,"))
        prefs.triggered.connect(self.open_settings)
        menu.addAction(prefs)
        menu.addSeparator()
        self._make_tools_menus(menu)
        for act in (open_files, open_folder):
            act.setEnabled(self.user.can("import"))

    def _make_model_selector(self) -> None:
        bar = QToolBar("Model", self)
        bar.setObjectName("model_toolbar")
        bar.addWidget(QLabel(" Model "))
        self.model_box = QComboBox()
        self.model_box.setMinimumWidth(220)
        self.refresh_models()
        self.model_box.activated.connect(self._model_chosen)
        bar.addWidget(self.model_box)
        self.addToolBar(bar)

    def refresh_models(self) -> None:
        """The shipped model, the store's model versions, and "other file"."""
        self.model_box.blockSignals(True)
        self.model_box.clear()
        self.model_box.addItem("shipped default", str(DEFAULT_MODEL))
        if DEFAULT_FP32 != DEFAULT_MODEL and DEFAULT_FP32.is_file():  # (not in the bundle)
            self.model_box.addItem("shipped default, fp32", str(DEFAULT_FP32))
        for mv in self.store.models(self.user):
            mark = " (active)" if mv["active"] else ""
            self.model_box.addItem(f"{mv['name']}{mark}", mv["file_path"])
        self.model_box.addItem("other .onnx file…", "")
        current = self.model_box.findData(str(self.predictor.path))
        if current < 0:
            self.model_box.insertItem(1, self.predictor.path.name, str(self.predictor.path))
            current = 1
        self.model_box.setCurrentIndex(current)
        self.model_box.blockSignals(False)

    def _model_chosen(self, index: int) -> None:
        path = self.model_box.itemData(index)
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Choose an ONNX model", filter="ONNX models (*.onnx)"
            )
        if path:
            self.set_model(path)
        self.refresh_models()

    def set_model(self, path: str) -> bool:
        """Predict with another model (the open lot is predicted again); False on a bad file."""
        try:
            predictor = Predictor(path)
        except WaferSegError as exc:
            self._show_conflict(f"model not loaded: {exc}")
            return False
        self.predictor = predictor
        self.refresh_models()
        if self.lot_box.currentText():
            self.open_lot(self.lot_box.currentText())
        return True

    def open_settings(self) -> SettingsDialog:
        """Show the settings dialog (non-blocking); accepted values are saved and applied."""
        dialog = SettingsDialog(self.prefs, self.findChildren(QAction), self)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_settings()))
        dialog.show()
        self.settings_dialog = dialog
        return dialog

    def apply_settings(self, new: prefs_io.Settings) -> None:
        """Save and apply preferences (the store URL takes effect at the next start)."""
        try:
            prefs_io.save(new)
        except WaferSegError as exc:
            self._show_conflict(f"settings not saved: {exc}")
            return
        old, self.prefs = self.prefs, new
        self.editor.brush_radius = new.brush_radius
        self.opacity.setValue(round(new.overlay_opacity * 100))
        if new.model_path != old.model_path:
            self.set_model(new.model_path or str(DEFAULT_MODEL))

    def _open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open wafer-map files")
        if files:
            self.import_paths(files)

    def _open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of wafer-map files")
        if folder:
            self.import_paths([folder])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent():
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.import_paths([p]))

    def recent(self) -> list[str]:
        """Recently opened files and folders, newest first."""
        value = self._settings.value("recent", [])
        return [str(v) for v in (value if isinstance(value, list) else [value]) if v]

    def import_paths(self, paths: list[str]) -> None:
        """Import files and folders in a worker thread, with a progress dialog.

        Cancelling imports nothing; unreadable files are listed, the rest is imported.
        """
        recent = [p for p in paths + self.recent() if p]
        self._settings.setValue("recent", list(dict.fromkeys(recent))[: self.MAX_RECENT])
        self._fill_recent()
        self._import_thread = QThread(self)
        worker = ImportWorker(self.store, self.user, paths)
        worker.moveToThread(self._import_thread)
        dialog = QProgressDialog("Reading files…", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Import")
        dialog.setMinimumDuration(300)
        # Direct: queued, stop would wait in the busy worker thread until the import is over.
        dialog.canceled.connect(worker.stop, Qt.ConnectionType.DirectConnection)
        # Slots are this window's methods, never lambdas: PySide runs a lambda in the thread
        # that emits, and widgets must only be touched from the GUI thread.
        worker.progress.connect(self._on_import_progress)
        worker.done.connect(self._on_imported)
        worker.failed.connect(self._on_import_failed)
        for sig in (worker.done, worker.failed):
            sig.connect(dialog.reset)
            sig.connect(self._import_thread.quit)
        self._import_thread.started.connect(worker.run)
        self._import_worker, self.import_dialog = worker, dialog
        self._import_thread.start()

    def _on_imported(self, lots: dict[str, int], errors: list[str]) -> None:
        summary = ", ".join(f"{lot} ({n} wafers)" for lot, n in lots.items()) or "no wafers"
        self.statusBar().showMessage(f"imported {summary}", 8000)
        if errors:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Some files were not imported",
                f"{len(errors)} file(s) could not be read; the others were imported.",
                parent=self,
            )
            box.setDetailedText("\n".join(errors))
            box.setModal(False)
            box.show()
            self.import_errors_box = box
        self.refresh_lots()
        if lots:
            self.lot_box.setCurrentText(next(iter(lots)))
        self.import_finished.emit(lots, errors)

    def _on_import_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)
        self.import_finished.emit({}, [message])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept dropped files and folders."""
        if event.mimeData().hasUrls() and self.user.can("import"):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Import what was dropped."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.import_paths(paths)

    def _make_edit_toolbar(self) -> None:
        # Its own row: beside the model and view bars it ran past a 1280-pixel window, and the
        # sector, undo and accept buttons hid behind the overflow arrow.
        self.addToolBarBreak()
        bar = QToolBar("Edit", self)
        bar.setObjectName("edit_toolbar")
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool, key, label in (
            ("select", "S", "Select"),
            ("polygon", "L", "Polygon"),
            ("hole", "H", "Hole"),
            ("brush", "B", "Brush"),
            ("eraser", "E", "Eraser"),
            ("ring", "R", "Ring"),
            ("sector", "T", "Sector"),
        ):
            act = QAction(label, self, checkable=True, checked=tool == "select")
            act.setShortcut(QKeySequence(key))
            act.setToolTip(f"{label} ({key})")
            act.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            group.addAction(act)
            bar.addAction(act)
            self.tool_actions[tool] = act
        bar.addSeparator()
        undo = self.editor.stack.createUndoAction(self, "Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.editor.stack.createRedoAction(self, "Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        bar.addAction(undo)
        bar.addAction(redo)
        accept_lot = QAction("Accept lot", self)
        accept_lot.setToolTip(
            "accept the predictions of every wafer of the lot (Ctrl+Shift+Return)"
        )
        accept_lot.setShortcut(QKeySequence("Ctrl+Shift+Return"))
        accept_lot.triggered.connect(self.accept_lot_predictions)
        accept = QAction("Accept prediction", self)
        accept.setShortcut(QKeySequence("Ctrl+Return"))
        accept.triggered.connect(self.accept_prediction)
        bar.addAction(accept)
        bar.addAction(accept_lot)
        reviewed = QAction("Mark reviewed", self)
        reviewed.setShortcut(QKeySequence("M"))
        reviewed.triggered.connect(self.mark_reviewed)
        bar.addAction(reviewed)
        for key, fn in (
            (Qt.Key.Key_Return, self.editor.finish),
            (Qt.Key.Key_Enter, self.editor.finish),
            (Qt.Key.Key_Escape, self.editor.cancel),
            (Qt.Key.Key_Backspace, self.editor.back),
            (Qt.Key.Key_Delete, self.editor.delete_selected),
        ):
            act = QAction(self)
            act.setShortcut(QKeySequence(key))
            act.triggered.connect(lambda _=False, f=fn: f())
            self.addAction(act)
        for c in PATTERN_CLASSES:
            act = QAction(self)
            act.setShortcut(QKeySequence(c.key))
            act.triggered.connect(lambda _=False, cid=c.id: self.editor.set_class(cid))
            self.addAction(act)
        self.addToolBar(bar)
        self.edit_bar = bar
        if not self.user.can("annotate"):  # the service layer refuses it anyway; say so up front
            bar.setEnabled(False)

    def set_tool(self, tool: str) -> None:
        """Pick an editing tool (annotations overlay on; panning only with the select tool)."""
        self.editor.set_tool(tool)
        self.tool_actions[tool].setChecked(True)
        self.view.setDragMode(
            WaferView.DragMode.ScrollHandDrag if tool == "select" else WaferView.DragMode.NoDrag
        )
        self.show_annotations.setChecked(True)

    def accept_prediction(self) -> None:
        """Turn the wafer's predicted mask into editable regions (one undo step)."""
        pred = self.predictions.get(self._wafer_id)
        if pred is None:
            self.statusBar().showMessage("no prediction for this wafer yet", 3000)
            return
        self.editor.accept_prediction(pred["mask"])
        self.show_annotations.setChecked(True)

    def mark_reviewed(self) -> None:
        """Mark the wafer reviewed and go to the next one."""
        if self._wafer_id < 0:
            return
        self.store.set_status(self.user, self._wafer_id, "reviewed")
        item = self._items.get(self._wafer_id)
        if item is not None:
            item.setText(STATUS_COL, "reviewed")
        self.step_wafer(1)

    def _on_edited(self) -> None:
        if self._wafer is None or self.editor.doc is None:
            return
        self._annotations = self.editor.mask()
        item = self._items.get(self._wafer_id)
        if item is not None and item.text(STATUS_COL) == "new" and self.editor.doc.regions:
            item.setText(STATUS_COL, "annotated")
        self._update_overlay()

    def _show_conflict(self, message: str) -> None:
        self.statusBar().showMessage(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "Not saved", message, parent=self)
        box.setModal(False)
        box.show()
        self.conflict_box = box

    # ---- lots ---------------------------------------------------------------------------------

    def refresh_lots(self) -> None:
        """Reload the lot list (keeps the current lot when it still exists)."""
        current = self.lot_box.currentText()
        names = [lot["name"] for lot in self.store.lots(self.user)]
        self.lot_box.blockSignals(True)
        self.lot_box.clear()
        self.lot_box.addItems(names)
        self.lot_box.blockSignals(False)
        if names:
            self.lot_box.setCurrentText(current if current in names else names[0])
            self.open_lot(self.lot_box.currentText())

    def open_lot(self, name: str) -> None:
        """Show a lot's wafers (worst first) and predict them in a worker thread."""
        if not name:
            return
        self._stop_worker()
        rows = self.store.list_wafers(self.user, lot=name, worst_first=True)
        self.browser.clear()
        self._items.clear()
        self.predictions.clear()
        self.browser.setSortingEnabled(False)
        for r in rows:
            fail = 100.0 * r["fail_dies"] / max(1, r["dies"])
            item = _SortableItem([r["wafer"], "…", "", "", f"{fail:.1f}", r["status"]])
            item.setData(0, Qt.ItemDataRole.UserRole, r["id"])
            self.browser.addTopLevelItem(item)
            self._items[r["id"]] = item
        self.browser.setSortingEnabled(True)
        self.browser.sortItems(FAIL_COL, Qt.SortOrder.DescendingOrder)
        if self.browser.topLevelItemCount():
            self.browser.setCurrentItem(self.browser.topLevelItem(0))
        self._fit_browser()
        self._start_worker([r["id"] for r in rows])

    def _start_worker(self, ids: list[int]) -> None:
        self._thread = QThread(self)
        self._worker = PredictWorker(self.store, self.user, self.predictor, ids)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.wafer_predicted.connect(self._on_predicted)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_predict_failed)  # a method: runs in the GUI thread
        self._worker.finished.connect(self._thread.quit)
        self._worker.failed.connect(self._thread.quit)
        self.progress.setRange(0, max(1, len(ids)))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.statusBar().showMessage(f"predicting {len(ids)} wafers…")
        self._thread.start()

    def _stop_worker(self) -> None:
        if self._worker is not None and self._thread is not None:
            self._worker.stop()
            self._thread.quit()
            self._thread.wait()
        self._worker = self._thread = None

    def _apply_filter(self) -> None:
        """Hide wafers whose id, pattern or status does not contain the filter text."""
        text = self.filter_box.text().strip().lower()
        for row in range(self.browser.topLevelItemCount()):
            item = self.browser.topLevelItem(row)
            hay = " ".join(item.text(c) for c in (0, 1, STATUS_COL)).lower()
            item.setHidden(bool(text) and text not in hay)

    def _stale(self) -> bool:
        """True for signals of a worker that was replaced (the user switched lots)."""
        return self.sender() is not self._worker

    def _on_predicted(self, wafer_id: int, pred: dict[str, Any]) -> None:
        if self._stale():
            return
        self.predictions[wafer_id] = pred
        item = self._items.get(wafer_id)
        if item is not None:
            item.setText(1, pred["pattern"])
            item.setText(2, f"{pred['pattern_probability']:.2f}")
            item.setText(3, f"{pred['uncertainty']:.2f}")
            if "grid" in pred:
                thumb = QPixmap.fromImage(grid_image(pred["grid"])).scaled(
                    28,
                    28,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.FastTransformation,
                )
                item.setIcon(0, QIcon(thumb))
            self._apply_filter()
        if wafer_id == self._wafer_id:
            self._update_overlay()

    def _on_predict_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"prediction failed: {message}")

    def _on_import_progress(self, done: int, total: int) -> None:
        self.import_dialog.setMaximum(total)
        self.import_dialog.setValue(done)

    def _on_progress(self, done: int, total: int) -> None:
        if not self._stale():
            self.progress.setValue(done)

    def _on_finished(self, ms: float) -> None:
        if self._stale():
            return
        self.progress.setVisible(False)
        self._fit_browser()  # the patterns and figures are in now
        n = len(self.predictions)
        self.statusBar().showMessage(f"{n} wafer{'s' * (n != 1)} predicted in {ms:.0f} ms", 5000)
        self.lot_predicted.emit(ms)

    # ---- wafers -------------------------------------------------------------------------------

    def step_wafer(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) wafer in the browser's order."""
        row = self.browser.indexOfTopLevelItem(self.browser.currentItem()) + step
        if 0 <= row < self.browser.topLevelItemCount():
            self.browser.setCurrentItem(self.browser.topLevelItem(row))

    def select_wafer(self, wafer_key: str) -> bool:
        """Show the wafer with this id in the current lot; False when there is none."""
        for row in range(self.browser.topLevelItemCount()):
            item = self.browser.topLevelItem(row)
            if item.text(0) == wafer_key:
                self.browser.setCurrentItem(item)
                return True
        return False

    @property
    def wafer(self) -> WaferMap | None:
        """The wafer shown."""
        return self._wafer

    def current_wafer_id(self) -> int:
        """Store id of the wafer shown (-1 when none)."""
        return self._wafer_id

    def _open_current(
        self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None
    ) -> None:
        if item is None:
            return
        self._wafer_id = int(item.data(0, Qt.ItemDataRole.UserRole))
        self._wafer = self.store.wafer(self.user, self._wafer_id)
        self._defects_at = defects_by_die(self._wafer)
        self.editor.load(self._wafer_id, self._wafer)
        self._annotations = self.editor.mask()
        self.view.show_wafer(self._wafer, None)
        self._update_overlay()

    def reload_current(self) -> None:
        """Reload the wafer shown (after someone else changed its annotations)."""
        self._open_current(self.browser.currentItem(), None)

    def _update_overlay(self) -> None:
        if self._wafer is None:
            return
        pred = self.predictions.get(self._wafer_id)
        if self.show_annotations.isChecked():
            self.view.set_mask(self._annotations)
        elif self.show_prediction.isChecked():
            self.view.set_mask(pred["mask"] if pred else None)
        elif self.show_confidence.isChecked() or self.show_entropy.isChecked():
            full = self._full_prediction()
            on = self._wafer.grid > 0
            if self.show_confidence.isChecked():
                self.view.set_image(heat_image(full["probability"], on, 1.0))
            else:
                # Scaled to this wafer's own range: most dies are near zero entropy.
                top = float(full["entropy"][on].max()) if on.any() else 1.0
                self.view.set_image(heat_image(full["entropy"], on, max(top, 0.05)))
        else:
            self.view.set_mask(None)
        w = self._wafer
        self.view.set_points(
            [(d.col + 0.5, d.row + 0.5) for d in w.defects] if self.show_defects.isChecked() else []
        )
        self._fill_region_list()
        if pred:
            others = ", ".join(p for p in pred["patterns"] if p != pred["pattern"])
            self.prediction_label.setText(
                f"{pred['pattern']}"
                + (f" (also {others})" if others else "")
                + f"<br>probability of {pred['pattern']} {pred['pattern_probability']:.2f}"
                + f"<br>die confidence {pred['confidence']:.2f}"
                + f"<br>die uncertainty {pred['uncertainty']:.2f}"
                + self._scale_note()
            )
        else:
            self.prediction_label.setText("predicting…")

    def _scale_note(self) -> str:
        """A line saying the model saw this wafer on k x k blocks (large wafers), else nothing."""
        k = (
            coarse.factor(self._wafer.grid.shape, self.predictor.max_side)
            if self._wafer is not None
            else 1
        )
        # The model judged blocks of k x k dies: outlines are only as fine as that, say why.
        return f"<br>model view: {k}x{k} blocks" if k > 1 else ""

    def _full_prediction(self) -> dict[str, Any]:
        """The shown wafer's prediction with its per-die probability and entropy maps.

        A cached prediction holds only the mask, so those are recomputed (one wafer, a few ms).
        """
        pred = self.predictions.get(self._wafer_id, {})
        if "probability" not in pred and self._wafer is not None:
            p = self.predictor.predict([self._wafer])[0]
            pred = {**pred, "probability": p.probability, "entropy": p.entropy}
            if self._wafer_id in self.predictions:
                self.predictions[self._wafer_id] = pred
        return pred

    def _fill_region_list(self) -> None:
        """The annotation list: one line per region of the wafer (click selects it)."""
        self.region_list.blockSignals(True)
        self.region_list.clear()
        doc = self.editor.doc
        if doc is not None:
            for key, r in doc.regions.items():
                dies = int(
                    (mask_from_geometry(r.geometry, doc.wafer.shape) & (doc.wafer.grid > 0)).sum()
                )
                item = QListWidgetItem(f"{PATTERN_CLASSES[r.class_id - 1].name} — {dies} dies")
                item.setData(Qt.ItemDataRole.UserRole, key)
                self.region_list.addItem(item)
                if key == self.editor.selected:
                    self.region_list.setCurrentItem(item)
        self.region_list.blockSignals(False)

    def _region_clicked(self, item: QListWidgetItem) -> None:
        self.editor.selected = int(item.data(Qt.ItemDataRole.UserRole))

    def accept_lot_predictions(self) -> int:
        """Replace your annotations of every predicted wafer of the lot by its prediction.

        The regions are saved as model annotations (other annotators' stay); returns the number
        of wafers changed.
        """
        changed = 0
        for wid, pred in list(self.predictions.items()):
            self.store.replace_annotations(
                self.user, wid, pred["mask"], source="model", model_version=self.predictor.hash[:12]
            )
            changed += 1
        if self._wafer is not None:
            self.editor.load(self._wafer_id, self._wafer)
        self.statusBar().showMessage(f"predictions accepted on {changed} wafers", 5000)
        return changed

    def _show_die(self, row: int, col: int) -> None:
        w = self._wafer
        if row < 0 or w is None:
            self.statusBar().clearMessage()
            return
        x, y = w.canonical_to_file(row, col)
        cls = self._annotations[row, col]
        pred = self.predictions.get(self._wafer_id)
        pcls = int(pred["mask"][row, col]) if pred else 0
        text = (
            f"die r{row} c{col}   file x={x} y={y}   {STATE_NAMES[int(w.grid[row, col])]}"
            f"{bin_text(w, row, col)}"
            f"   class {PATTERN_CLASSES[cls - 1].name if cls else '—'}"
            f"   predicted {PATTERN_CLASSES[pcls - 1].name if pcls else '—'}"
            f"{defects_text(w, self._defects_at.get((row, col), []))}"
        )
        self.statusBar().showMessage(text)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the worker and keep the window layout."""
        self._stop_worker()
        self._settings.setValue("window/geometry", self.saveGeometry())
        self._settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        super().closeEvent(event)


class _SortableItem(QTreeWidgetItem):
    """Sorts numeric columns as numbers."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        col = self.treeWidget().sortColumn() if self.treeWidget() else 0
        try:
            return float(self.text(col)) < float(other.text(col))
        except ValueError:
            return self.text(col) < other.text(col)
