"""Similar wafers: the stored wafers whose model embedding is closest to the one shown.

The ranking is ``waferseg similar`` (:func:`waferseg_core.store.al_ops.similar`: cosine of the
model's pooled encoder features). A wafer's embedding is computed once per model and kept in the
store, so the first search over a large store predicts every wafer; the search therefore runs in
a worker thread and the window stays usable.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.render import grid_image
from app.tables import readonly_table, set_row
from waferseg_core.errors import WaferSegError
from waferseg_core.inference import Predictor
from waferseg_core.store.al_ops import similar
from waferseg_core.store.service import Store, UserRef

COLUMNS = ["Map", "Similarity", "Lot", "Wafer", "Pattern", "Status"]
THUMB = 48  # pixels


class SimilarWorker(QObject):
    """Runs one search; the rows carry each wafer's die grid for its thumbnail."""

    done = Signal(list, object)  # rows, the searched wafer's die grid
    failed = Signal(str)

    def __init__(
        self,
        store: Store,
        user: UserRef,
        predictor: Predictor,
        wafer_id: int,
        top: int,
        other_lots: bool,
    ) -> None:
        super().__init__()
        self.store, self.user, self.predictor = store, user, predictor
        self.wafer_id, self.top, self.other_lots = wafer_id, top, other_lots

    @Slot()
    def run(self) -> None:
        """Rank the store's wafers against the wafer; report the rows or the error."""
        try:
            target = self.store.wafer(self.user, self.wafer_id).grid
            rows = similar(
                self.store,
                self.user,
                self.predictor,
                self.wafer_id,
                self.top,
                other_lots=self.other_lots,
            )
            for r in rows:
                r["grid"] = self.store.wafer(self.user, r["wafer_id"]).grid
        except WaferSegError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # shown in the window; the app carries on
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.done.emit(rows, target)


class SimilarPanel(QWidget):
    """The wafers most like one, best first; double-click opens one in the main window."""

    open_wafer = Signal(str, str)  # lot, wafer key
    searched = Signal(int)  # rows shown (-1: the search failed)

    def __init__(self, store: Store, user: UserRef, predictor: Predictor) -> None:
        super().__init__()
        self.store, self.user, self.predictor = store, user, predictor
        self.setWindowTitle("Similar wafers — WaferSeg Studio")
        self.target = QLabel("no wafer")
        self.target_map = QLabel()  # the searched wafer's thumbnail
        self.top = QSpinBox()
        self.top.setRange(1, 500)
        self.top.setValue(20)
        self.other_lots = QCheckBox("other lots only")
        self.other_lots.setToolTip("leave the wafer's own lot out of the ranking")
        self.again = QPushButton("Search")
        self.again.clicked.connect(lambda: self.search(self.wafer_id, self.target.text()))
        self.again.setEnabled(False)
        self.table = readonly_table(COLUMNS)
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.cellDoubleClicked.connect(lambda row, _: self._open_row(row))
        self.status = QLabel("")
        top = QHBoxLayout()
        for w in (
            QLabel("Wafers most like"),
            self.target_map,
            self.target,
            QLabel("show"),
            self.top,
            self.other_lots,
            self.again,
        ):
            top.addWidget(w)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.status)
        self.rows: list[dict[str, Any]] = []
        self.wafer_id = -1
        self._running: tuple[QThread, SimilarWorker] | None = None
        self._pending: tuple[int, str] | None = None
        self.resize(620, 520)

    def search(self, wafer_id: int, label: str) -> None:
        """Rank every stored wafer against this one (a newer request replaces a queued one)."""
        if self._running is not None:
            self._pending = (wafer_id, label)  # run when the current search ends
            return
        self.wafer_id = wafer_id
        self.target.setText(label)
        self.again.setEnabled(False)
        self.status.setText(f"searching with {self.predictor.path.name}…")
        thread = QThread(self)
        worker = SimilarWorker(
            self.store,
            self.user,
            self.predictor,
            wafer_id,
            self.top.value(),
            self.other_lots.isChecked(),
        )
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(self._show)
        worker.failed.connect(self._failed)
        for sig in (worker.done, worker.failed):
            sig.connect(thread.quit)
        thread.finished.connect(self._ended)
        thread.finished.connect(thread.deleteLater)
        self._running = (thread, worker)
        thread.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Let a running search end first: its thread must not outlive the window."""
        self._pending = None
        if self._running is not None:
            thread = self._running[0]
            thread.quit()  # from here: the done signal's own quit would queue behind this wait
            thread.wait()
        super().closeEvent(event)

    def _show(self, rows: list[dict[str, Any]], target: Any) -> None:
        self.rows = rows
        self.target_map.setPixmap(_thumbnail(target))
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            set_row(
                self.table,
                i,
                [
                    "",
                    f"{r['similarity']:.3f}",
                    r["lot"],
                    r["wafer"],
                    r["pattern"] or "—",
                    r["status"],
                ],
            )
            self.table.setItem(i, 0, QTableWidgetItem(QIcon(_thumbnail(r["grid"])), ""))
            self.table.setRowHeight(i, THUMB + 4)
        self.table.resizeColumnsToContents()
        self.status.setText(
            f"{len(rows)} wafers, most similar first (cosine of {self.predictor.path.name}'s "
            "embeddings); double-click one to open it"
        )
        self.searched.emit(len(rows))

    def _failed(self, message: str) -> None:
        self.rows = []
        self.target_map.clear()
        self.table.setRowCount(0)
        self.status.setText(f"error: {message}")
        self.searched.emit(-1)

    def _ended(self) -> None:
        self._running = None
        self.again.setEnabled(self.wafer_id >= 0)
        if self._pending is not None:
            wafer_id, label = self._pending
            self._pending = None
            self.search(wafer_id, label)

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.open_wafer.emit(self.rows[row]["lot"], self.rows[row]["wafer"])


def _thumbnail(grid: Any) -> QPixmap:
    """A die grid as a small crisp pixmap (one block of pixels per die)."""
    return QPixmap.fromImage(grid_image(grid)).scaled(
        THUMB,
        THUMB,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,
    )
