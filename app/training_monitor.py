"""The training monitor: new jobs, live curves from the store, cancel, history, promote.

Jobs live in the store, so the monitor shows a job wherever its worker runs: a worker process
this window starts on this machine (``waferseg worker --once``), or one on a GPU box sharing the
store. Curves are read from the store's epoch metrics every few seconds.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.tables import readonly_table, set_row
from waferseg_core.classes import CLASSES
from waferseg_core.errors import WaferSegError
from waferseg_core.store.service import Store, UserRef

ARCHS = ("resnet18-w0.5", "resnet18-w0.25", "resnet18", "resnet34", "resnet50")
JOB_COLUMNS = ["Job", "Status", "By", "Epochs", "Arch", "LR", "Data", "Model"]
HYPER = ("arch", "epochs", "lr", "batch_size", "synth", "lots", "device", "seed", "fixmatch")


def _rounds(cfg: dict[str, Any], kind: str) -> str:
    """What a job's epoch rows count up to: epochs, or for batch inference its lots."""
    if kind == "infer":
        return str(len(cfg.get("lots") or []) or "?")  # no list: every lot, counted when run
    return str(cfg.get("epochs", "?"))


def _data_text(cfg: dict[str, Any], kind: str = "train") -> str:
    if kind == "infer":  # batch inference into the prediction cache
        return "predict: " + (", ".join(cfg.get("lots") or []) or "every lot")
    if kind != "train":
        return f"{kind}: {cfg.get('strategy', '')} budget {cfg.get('budget', '')}"
    parts = []
    if cfg.get("lots"):
        parts.append("lots " + ", ".join(cfg["lots"]))
    if cfg.get("synth"):
        parts.append(f"{cfg['synth']} synthetic")
    if cfg.get("coco"):
        parts.append("COCO")
    if cfg.get("real_npz"):
        parts.append("real npz")
    return "; ".join(parts)


class NewJobDialog(QDialog):
    """Data, architecture and schedule of a training job, and where it runs."""

    def __init__(self, lots: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New training job")
        self.lots = QListWidget()
        for name in lots:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.lots.addItem(item)
        self.synth = QSpinBox()
        self.synth.setRange(0, 1_000_000)
        self.synth.setValue(2000)
        self.arch = QComboBox()
        self.arch.addItems(ARCHS)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(20)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(2e-3)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.fixmatch = QCheckBox("FixMatch on the lots' unannotated wafers")
        self.name = QLineEdit()
        self.name.setPlaceholderText("shown in the model list (default: job N)")
        self.run_here = QRadioButton("Start a worker on this machine now")
        self.queue = QRadioButton("Queue it for a worker on another machine")
        self.run_here.setChecked(True)
        # The workstation bundle has no torch: its jobs go to workers on other machines.
        if getattr(sys, "frozen", False):
            self.run_here.setEnabled(False)
            self.run_here.setToolTip("this installation has no training extra; queue the job")
            self.queue.setChecked(True)
        form = QFormLayout(self)
        form.addRow("Annotated wafers of lots", self.lots)
        form.addRow("Synthetic wafers", self.synth)
        form.addRow("Architecture", self.arch)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.lr)
        form.addRow("Device", self.device)
        form.addRow("", self.fixmatch)
        form.addRow("Name", self.name)
        form.addRow(self.run_here)
        form.addRow(self.queue)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def config(self) -> dict[str, Any]:
        """The job's configuration as the worker reads it."""
        lots = [
            self.lots.item(i).text()
            for i in range(self.lots.count())
            if self.lots.item(i).checkState() == Qt.CheckState.Checked
        ]
        cfg: dict[str, Any] = {
            "arch": self.arch.currentText(),
            "epochs": self.epochs.value(),
            "lr": self.lr.value(),
            "device": self.device.currentText(),
            "synth": self.synth.value(),
            "lots": lots,
            "fixmatch": self.fixmatch.isChecked(),
        }
        if self.name.text().strip():
            cfg["name"] = self.name.text().strip()
        return cfg


class TrainingMonitor(QWidget):
    """Jobs and their curves; new job, cancel, compare, promote."""

    def __init__(self, store: Store, user: UserRef, refresh_ms: int = 2000) -> None:
        super().__init__()
        self.store, self.user = store, user
        self.setWindowTitle("Training monitor — WaferSeg Studio")
        self.processes: list[QProcess] = []
        self.jobs: list[dict[str, Any]] = []
        self.table = readonly_table(JOB_COLUMNS)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.iou_plot = pg.PlotWidget(title="Validation IoU per class")
        self.iou_plot.setLabel("bottom", "epoch")
        self.iou_plot.addLegend(offset=(10, 10))
        self.compare = QTextBrowser()
        self.new_button = QPushButton("New job…")
        self.new_button.clicked.connect(self._new_job_dialog)
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.promote_button = QPushButton("Promote model")
        self.promote_button.clicked.connect(self.promote_selected)
        self.new_button.setEnabled(user.can("train"))
        self.status = QLabel("")
        buttons = QHBoxLayout()
        for b in (self.new_button, self.cancel_button, self.promote_button):
            buttons.addWidget(b)
        buttons.addWidget(self.status, 1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addLayout(buttons)
        ll.addWidget(self.table, 2)
        ll.addWidget(QLabel("Selected jobs side by side"))
        ll.addWidget(self.compare, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.loss_plot)
        right.addWidget(self.iou_plot)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([560, 640])
        lay = QVBoxLayout(self)
        lay.addWidget(split)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(refresh_ms)
        self.resize(1200, 700)
        self.refresh()

    # ---- jobs -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reread the jobs and the selected job's curves from the store."""
        selected = self.selected_ids()
        self.jobs = self.store.jobs(self.user)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.jobs))
        for i, j in enumerate(self.jobs):
            cfg = j["config"]
            status = j["status"] + (
                " (cancel asked)" if j["cancel_requested"] and j["status"] == "running" else ""
            )
            values = [
                str(j["id"]),
                status,
                j["created_by"],
                f"{j['epochs']}/{_rounds(cfg, j['kind'])}",
                str(cfg.get("arch", "")),
                str(cfg.get("lr", "")),
                _data_text(cfg, j["kind"]),
                "" if j["model_id"] is None else f"#{j['model_id']}",
            ]
            set_row(self.table, i, values)
            if j["id"] in selected:
                self.table.selectRow(i)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        self._selection_changed()

    def selected_ids(self) -> list[int]:
        """Ids of the selected jobs, in table order."""
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.jobs[r]["id"] for r in rows if r < len(self.jobs)]

    def select_job(self, job_id: int) -> None:
        """Select a job (its curves show)."""
        for i, j in enumerate(self.jobs):
            if j["id"] == job_id:
                self.table.selectRow(i)

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        self._draw_curves(ids[0] if ids else None)
        self._draw_compare(ids)
        job = next((j for j in self.jobs if ids and j["id"] == ids[0]), None)
        self.cancel_button.setEnabled(
            bool(job) and self.user.can("train") and job["status"] in ("queued", "running")
        )
        self.promote_button.setEnabled(
            bool(job) and self.user.can("promote") and job["model_id"] is not None
        )

    def _draw_curves(self, job_id: int | None) -> None:
        self.loss_plot.clear()
        self.iou_plot.clear()
        if job_id is None:
            return
        # Training epochs only: an active-learning or batch-inference job's rows hold counts.
        epochs = [e for e in self.store.job(self.user, job_id)["epochs"] if "loss" in e]
        xs = [e["epoch"] for e in epochs]
        self.loss_plot.plot(
            xs, [e["loss"] for e in epochs], pen=pg.mkPen("#111", width=2), symbol="o"
        )
        for c in CLASSES[1:]:
            ys = [(e.get("per_class_iou") or {}).get(c.name) for e in epochs]
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if pts:
                self.iou_plot.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    pen=pg.mkPen(c.color, width=2),
                    name=c.name,
                )

    def _draw_compare(self, ids: list[int]) -> None:
        chosen = [j for j in self.jobs if j["id"] in ids]
        if not chosen:
            self.compare.setHtml("<p>Select jobs to compare their settings.</p>")
            return
        head = "".join(f"<th>job {j['id']}</th>" for j in chosen)
        rows = [f"<tr><th></th>{head}</tr>"]
        for key in HYPER:
            cells = "".join(f"<td>{j['config'].get(key, '')}</td>" for j in chosen)
            rows.append(f"<tr><td>{key}</td>{cells}</tr>")
        cells = "".join(f"<td>{j['status']}</td>" for j in chosen)
        rows.append(f"<tr><td>status</td>{cells}</tr>")
        self.compare.setHtml(f"<table border=1 cellspacing=0 cellpadding=2>{''.join(rows)}</table>")

    # ---- actions --------------------------------------------------------------------------------

    def _new_job_dialog(self) -> None:
        dlg = NewJobDialog([x["name"] for x in self.store.lots(self.user)], self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            try:
                self.submit(dlg.config(), start_worker=dlg.run_here.isChecked())
            except WaferSegError as exc:
                QMessageBox.warning(self, "New job", str(exc))

    def submit(self, config: dict[str, Any], *, start_worker: bool) -> int:
        """Queue a job; optionally start a local worker process that runs the queue once."""
        if not config.get("lots") and not config.get("synth"):
            from waferseg_core.errors import InvalidInputError

            raise InvalidInputError(
                "a job needs data: pick lots with annotations or synthetic wafers"
            )
        job_id = self.store.enqueue_job(self.user, config)
        if start_worker:
            self.start_worker()
        self.refresh()
        self.select_job(job_id)
        self.status.setText(f"job {job_id} queued" + (", worker started" if start_worker else ""))
        return job_id

    def start_worker(self) -> QProcess:
        """``waferseg worker --once`` as a separate process on this machine."""
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        proc.setProcessEnvironment(env)
        args = ["-m", "waferseg_core.cli", "--store", self.store.url]
        if not self.store.is_sqlite:
            # A shared store: the worker logs in as this user (password from WAFERSEG_PASSWORD).
            args += ["--user", self.user.name]
        args += ["worker", "--once", "--poll", "1"]
        proc.setProgram(sys.executable)
        proc.setArguments(args)
        proc.setWorkingDirectory(os.getcwd())
        proc.start()
        self.processes.append(proc)
        return proc

    def cancel_selected(self) -> None:
        """Ask the selected job to stop."""
        for job_id in self.selected_ids()[:1]:
            try:
                self.store.request_cancel(self.user, job_id)
            except WaferSegError as exc:  # it ended since the table was read
                self.status.setText(str(exc))
            else:
                self.status.setText(f"cancel requested for job {job_id}")
        self.refresh()

    def promote_selected(self) -> None:
        """Make the selected job's model the active one."""
        job = next((j for j in self.jobs if j["id"] in self.selected_ids()[:1]), None)
        if job and job["model_id"] is not None:
            self.store.promote(self.user, job["model_id"])
            self.status.setText(f"model #{job['model_id']} of job {job['id']} is now active")
        self.refresh()

    def closeEvent(self, event: Any) -> None:
        """Stop polling; running workers carry on (their jobs live in the store)."""
        self.timer.stop()
        super().closeEvent(event)
