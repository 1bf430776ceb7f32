"""The dashboard: patterns per lot, the pattern trend, model vs annotations, stacked lot maps.

Four pyqtgraph charts, each with a "Save PNG" button: wafers per pattern in the chosen lot (the
model's verdict beside the annotators'), the share of each pattern lot by lot, the die-level
confusion matrix of the model against the annotations (rows: annotations, row-normalised), and
the chosen lot's stacked map: per die position, the share of its wafers failing there, or whose
model mask puts a chosen class there (:mod:`waferseg_core.stacking`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from waferseg_core.classes import CLASSES
from waferseg_core.inference import Predictor
from waferseg_core.stacking import StackedMap
from waferseg_core.store.dashboard_data import (
    PATTERNS,
    Dashboard,
    LotStats,
    dashboard,
    lot_stack,
)
from waferseg_core.store.service import Store, UserRef

SHORT = {c.name: c.name for c in CLASSES[1:]} | {"none": "none"}
COLOURS = {c.name: c.color for c in CLASSES[1:]} | {"none": "#9aa0a6"}
CMAP = pg.colormap.get("viridis")


class DashboardWindow(QWidget):
    """Charts over the store's lots under the current model."""

    def __init__(self, store: Store, user: UserRef, predictor: Predictor) -> None:
        super().__init__()
        self.store, self.user, self.predictor = store, user, predictor
        self.setWindowTitle("Dashboard — WaferSeg Studio")
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.lot_box = QComboBox()
        self.lot_box.currentTextChanged.connect(lambda _: (self._draw_lot(), self._draw_stack()))
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.summary = QLabel("")
        top = QHBoxLayout()
        for w in (QLabel("Lot"), self.lot_box, refresh, self.summary):
            top.addWidget(w)
        top.addStretch(1)
        self.tabs = QTabWidget()
        self.charts: dict[str, pg.PlotWidget] = {}
        # What the stacked map shows: fails, or one class of the model's masks.
        self.stack_box = QComboBox()
        self.stack_box.addItems(["Fails", *(c.name for c in CLASSES[1:])])
        self.stack_box.currentIndexChanged.connect(lambda _: self._draw_stack())
        for title in ("Patterns in lot", "Pattern trend", "Model vs annotations", "Stacked map"):
            self.charts[title] = self._chart_tab(title)
        self.tabs.currentChanged.connect(lambda _: self._draw_stack())
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tabs)
        self.data: Dashboard | None = None
        self.stack_image: np.ndarray | None = None  # the stacked shares drawn last
        self._stack: tuple[str, StackedMap] | None = None  # (lot, its stack), made on demand
        self.resize(1000, 650)
        self.refresh()

    def _chart_tab(self, title: str) -> pg.PlotWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        if title == "Stacked map":
            row = QHBoxLayout()
            row.addWidget(QLabel("Show"))
            row.addWidget(self.stack_box)
            row.addStretch(1)
            lay.addLayout(row)
        plot = pg.PlotWidget()
        lay.addWidget(plot)
        save = QPushButton("Save PNG…")
        save.clicked.connect(lambda: self._save_dialog(title))
        lay.addWidget(save)
        self.tabs.addTab(box, title)
        return plot

    def refresh(self) -> Dashboard:
        """Recompute the figures (cached predictions make this cheap) and redraw."""
        self.data = dashboard(self.store, self.user, self.predictor)
        self._stack = None
        current = self.lot_box.currentText()
        self.lot_box.blockSignals(True)
        self.lot_box.clear()
        self.lot_box.addItems([s.lot for s in self.data.lots])
        if current:
            self.lot_box.setCurrentText(current)
        self.lot_box.blockSignals(False)
        self._draw_lot()
        self._draw_trend()
        self._draw_confusion()
        self._draw_stack()
        return self.data

    def _ticks(self, plot: pg.PlotWidget, axis: str, labels: list[str]) -> None:
        plot.getAxis(axis).setTicks([[(i, t) for i, t in enumerate(labels)]])

    def _draw_lot(self) -> None:
        plot = self.charts["Patterns in lot"]
        plot.clear()
        if self.data is None:
            return
        stats = self._lot_stats()
        if stats is None:
            return
        x = np.arange(len(PATTERNS))
        model = [stats.model.get(p, 0) for p in PATTERNS]
        annotated = [stats.annotated.get(p, 0) for p in PATTERNS]
        plot.addItem(pg.BarGraphItem(x=x - 0.2, height=model, width=0.4, brush="#4363d8"))
        plot.addItem(pg.BarGraphItem(x=x + 0.2, height=annotated, width=0.4, brush="#f58231"))
        self._ticks(plot, "bottom", [SHORT[p] for p in PATTERNS])
        # wafers are counted: whole-number ticks only, about eight of them at most
        top = max([*model, *annotated, 1])
        step = -(-top // 8)
        plot.getAxis("left").setTicks([[(v, str(v)) for v in range(0, top + step, step)]])
        plot.setLabel("left", "wafers")
        plot.setTitle(f"{stats.lot}: model (blue) and annotations (orange), {stats.wafers} wafers")
        self.summary.setText(
            f"{len(self.data.lots)} lots, {sum(s.wafers for s in self.data.lots)} wafers, "
            f"{self.data.compared_wafers} annotated wafers compared"
        )

    def _draw_trend(self) -> None:
        plot = self.charts["Pattern trend"]
        plot.clear()
        if self.data is None or not self.data.lots:
            return
        plot.addLegend(offset=(10, 10))
        x = np.arange(len(self.data.lots))
        for p in PATTERNS:
            y = [s.fractions()[p] * 100 for s in self.data.lots]
            if any(y):
                plot.plot(x, y, pen=pg.mkPen(COLOURS[p], width=2), symbol="o", name=p)
        self._ticks(plot, "bottom", [s.lot for s in self.data.lots])
        plot.setLabel("left", "% of the lot's wafers (model)")
        plot.setTitle("Pattern share lot by lot")

    def _draw_confusion(self) -> None:
        plot = self.charts["Model vs annotations"]
        plot.clear()
        if self.data is None:
            return
        m = self.data.confusion.astype(float)
        norm = m / np.maximum(m.sum(1, keepdims=True), 1)
        img = pg.ImageItem(norm.T)  # ImageItem's first axis is x (prediction)
        img.setColorMap(pg.colormap.get("viridis"))
        img.setLevels((0, 1))
        plot.addItem(img)
        names = [c.name for c in CLASSES]
        for r in range(len(names)):
            for c in range(len(names)):
                if m[r, c]:
                    colour = "k" if norm[r, c] > 0.6 else "w"
                    t = pg.TextItem(f"{norm[r, c]:.2f}", color=colour, anchor=(0.5, 0.5))
                    t.setPos(c + 0.5, r + 0.5)
                    plot.addItem(t)
        for axis in ("bottom", "left"):
            plot.getAxis(axis).setTicks([[(i + 0.5, n) for i, n in enumerate(names)]])
        plot.invertY(True)
        plot.setLabel("bottom", "model")
        plot.setLabel("left", "annotations")
        plot.setTitle(f"Dies, row-normalised, over {self.data.compared_wafers} annotated wafers")

    def _draw_stack(self) -> None:
        plot = self.charts["Stacked map"]
        if self.tabs.currentIndex() != list(self.charts).index("Stacked map"):
            return  # drawn when its tab is shown: stacking reads every wafer of the lot
        plot.clear()
        self.stack_image = None
        stats = self._lot_stats()
        if stats is None or not stats.wafers:
            return
        st = self._stacked(stats.lot)
        choice = self.stack_box.currentIndex()  # 0: fails, else the class id
        share = st.share(choice or None)
        # Colours span 0 to the highest share, so a class on 3% of the wafers still shows where.
        peak = float(np.nanmax(share)) if st.wafers and np.isfinite(share).any() else 0.0
        scaled = np.nan_to_num(share) / (peak or 1.0)
        rgba = CMAP.map(scaled.ravel(), mode="byte").reshape(*share.shape, 4)
        rgba[np.isnan(share)] = (255, 255, 255, 0)  # off the wafer: blank, not "0%"
        img = pg.ImageItem(np.transpose(rgba, (1, 0, 2)))  # ImageItem's first axis is x
        plot.addItem(img)
        plot.invertY(True)
        plot.setAspectLocked(True)
        for axis in ("bottom", "left"):
            plot.getAxis(axis).setTicks(None)
        what = "failing" if not choice else f"with {CLASSES[choice].name} (model)"
        left = f"; {st.left_out} of another die grid left out" if st.left_out else ""
        plot.setTitle(
            f"{stats.lot}: share of {st.wafers} wafers {what} at each die "
            f"(dark 0% to yellow {peak:.0%}){left}"
        )
        self.stack_image = share

    def _stacked(self, lot: str) -> StackedMap:
        """The lot's stack, made when first shown and kept until the lot or the figures change.

        Made from the cached predictions, one lot's at a time: a stack holds 9 shares per die.
        """
        if self._stack is None or self._stack[0] != lot:
            self._stack = (lot, lot_stack(self.store, self.user, [lot], self.predictor))
        return self._stack[1]

    def _lot_stats(self) -> LotStats | None:
        if self.data is None:
            return None
        return next((s for s in self.data.lots if s.lot == self.lot_box.currentText()), None)

    def save_png(self, title: str, path: str | Path) -> Path:
        """Save one chart (as shown) to a PNG file."""
        path = Path(path)
        if not self.charts[title].grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def _save_dialog(self, title: str) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, f"Save {title}", f"{title.lower().replace(' ', '-')}.png", "PNG (*.png)"
        )
        if path:
            self.save_png(title, path)
