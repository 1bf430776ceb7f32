"""The active-learning queue: run a query, then open the queued wafers in order.

Every strategy but BALD runs here on the ONNX model; BALD needs torch's MC dropout, so the
panel queues it as a job for a worker (``waferseg worker``), and its picks appear in the queue
when the job is done.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.tables import readonly_table, set_row
from waferseg_core.errors import WaferSegError
from waferseg_core.inference import Predictor
from waferseg_core.ml.active import STRATEGIES
from waferseg_core.store.al_ops import query
from waferseg_core.store.service import Store, UserRef

ALL_LOTS = "(all lots)"
DEFAULT_STRATEGY = "coreset"
COLUMNS = ["Rank", "Lot", "Wafer", "Strategy", "Score", "Predicted", "Status"]


def mix_note(rows: list[dict[str, Any]]) -> str:
    """The queue's predicted patterns, most first, and a warning when one holds most of it.

    Uncertainty strategies can fill a whole query with one confusing pattern (the simulation's
    margin rounds were mostly Donut or Random wafers), and a model learns little from more of
    the same; core-set, which picks wafers unlike those annotated, kept to the pool's mix.
    """
    counts = Counter(r["predicted"] for r in rows if r.get("predicted"))
    if not counts:
        return ""
    note = "predicted " + ", ".join(f"{k} {n}" for k, n in counts.most_common())
    (top, n), total = counts.most_common(1)[0], sum(counts.values())
    if total >= 10 and n > total / 2:
        note += f" — over half {top}: core-set or random would spread the picks"
    return note


class ALPanel(QWidget):
    """Query, look at the queue, open the next wafer to annotate."""

    open_wafer = Signal(str, str)  # lot, wafer key

    def __init__(self, store: Store, user: UserRef, predictor: Predictor) -> None:
        super().__init__()
        self.store, self.user, self.predictor = store, user, predictor
        self.setWindowTitle("Active learning — WaferSeg Studio")
        self.strategy = QComboBox()
        self.strategy.addItems(STRATEGIES)
        # The best measured: 95% of the full-pool score with 15-25% of the labels (training.md).
        self.strategy.setCurrentText(DEFAULT_STRATEGY)
        self.strategy.setToolTip(
            "coreset: wafers unlike those annotated; in the simulation it came closest to the "
            "full-pool score with the fewest labels, while margin and hybrid piled up one pattern"
        )
        self.budget = QSpinBox()
        self.budget.setRange(1, 100_000)
        self.budget.setValue(20)
        self.lot = QComboBox()
        self.lot.addItems([ALL_LOTS, *(x["name"] for x in store.lots(user))])
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("BALD: the model's torch checkpoint (best_model.pt)")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        run = QPushButton("Run query")
        run.clicked.connect(self.run_query)
        run.setEnabled(user.can("infer"))
        self.next_button = QPushButton("Open next")
        self.next_button.setToolTip("the first queued wafer nobody has annotated yet")
        self.next_button.clicked.connect(self.open_next)
        self.table = readonly_table(COLUMNS)
        self.table.cellDoubleClicked.connect(lambda row, _: self._open_row(row))
        self.status = QLabel("")
        top = QHBoxLayout()
        for w in (
            QLabel("Strategy"),
            self.strategy,
            QLabel("Budget"),
            self.budget,
            QLabel("Pool"),
            self.lot,
            run,
        ):
            top.addWidget(w)
        bald = QHBoxLayout()
        bald.addWidget(self.checkpoint, 1)
        bald.addWidget(browse)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(bald)
        lay.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.next_button)
        bottom.addWidget(self.status, 1)
        lay.addLayout(bottom)
        self.rows: list[dict[str, Any]] = []
        self.resize(700, 500)
        self.refresh()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Torch checkpoint", "", "Checkpoint (*.pt)")
        if path:
            self.checkpoint.setText(path)

    def refresh(self) -> list[dict[str, Any]]:
        """Reread the queue from the store."""
        self.rows = self.store.al_queue(self.user, self.predictor.hash)
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            values = [
                str(r["rank"]),
                r["lot"],
                r["wafer"],
                r["strategy"],
                f"{r['score']:.4f}",
                r["predicted"] or "",
                r["wafer_status"],
            ]
            set_row(self.table, i, values)
        self.table.resizeColumnsToContents()
        todo = sum(r["wafer_status"] == "new" for r in self.rows)
        self.next_button.setEnabled(todo > 0)
        text = f"{len(self.rows)} queued, {todo} still to annotate"
        self.status.setText("; ".join(x for x in (text, mix_note(self.rows)) if x))
        return self.rows

    def run_query(self) -> int:
        """Run the chosen query; BALD becomes a worker job. Returns how many were queued."""
        strategy, budget = self.strategy.currentText(), self.budget.value()
        lot = None if self.lot.currentText() == ALL_LOTS else self.lot.currentText()
        try:
            if strategy == "bald":
                job = self.store.enqueue_job(
                    self.user,
                    {
                        "strategy": "bald",
                        "budget": budget,
                        "lot": lot,
                        "checkpoint": self.checkpoint.text(),
                        "model": str(self.predictor.path),
                    },
                    kind="al_query",
                )
                self.status.setText(
                    f"BALD queued as job {job}: a worker runs its MC-dropout passes"
                )
                return 0
            picks = query(self.store, self.user, self.predictor, strategy, budget, lot=lot)
        except WaferSegError as exc:
            self.status.setText(f"error: {exc}")
            return 0
        self.refresh()
        return len(picks)

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.open_wafer.emit(self.rows[row]["lot"], self.rows[row]["wafer"])

    def open_next(self) -> bool:
        """Open the first queued wafer that is still unannotated."""
        self.refresh()
        for i, r in enumerate(self.rows):
            if r["wafer_status"] == "new":
                self.table.selectRow(i)
                self._open_row(i)
                return True
        return False
