"""The review window: compare annotators' masks of a wafer, see where they disagree, adjudicate.

Left: the lot's agreement table, worst (lowest kappa) first. Right: the chosen annotators' masks
side by side, as an overlay diff (dies everyone agrees on faint, disputed dies red) or as a
disagreement map; the figures (kappa, per-class IoU/Dice, zones); and the consensus being built:
start from the majority vote, then take a zone or a clicked disputed region from one annotator,
and save it as the consensus with the reviewer's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.render import CLASS_COLOURS, argb_image, heat_image
from app.tables import readonly_table, set_row
from app.wafer_view import WaferView
from waferseg_core.classes import CLASSES
from waferseg_core.review import (
    Mask,
    agreement_report,
    connected_region,
    disagreement,
    majority_vote,
    pick_regions,
    zones,
)
from waferseg_core.store.review_ops import WaferMasks, lot_agreement, wafer_masks
from waferseg_core.store.service import Store, UserRef

MODES = ("Side by side", "Overlay diff", "Disagreement map")
TABLE_COLUMNS = ["Wafer", "Annotators", "Kappa", "Kind", "Disputed", "Adjudicated"]
DISPUTED = 0xFFE63946  # red


def diff_image(masks: list[Mask], grid: Any) -> Any:
    """Agreed dies in their class colour at low alpha, disputed dies red."""
    agreed = masks[0]
    argb = (CLASS_COLOURS[agreed] & 0x00FFFFFF) | np.uint32(0x50000000)
    argb = np.where(agreed > 0, argb, 0).astype(np.uint32)
    argb[disagreement(masks, grid) > 0] = DISPUTED
    return argb_image(argb)


class ReviewWindow(QWidget):
    """Compare annotators, adjudicate, save the consensus (needs the review right to save)."""

    consensus_saved = Signal(int)  # wafer id

    def __init__(self, store: Store, user: UserRef, lot: str | None = None) -> None:
        super().__init__()
        self.store, self.user = store, user
        self.setWindowTitle("Review — WaferSeg Studio")
        self.masks: WaferMasks | None = None
        self.wafer_id = -1
        self.consensus: Mask | None = None
        self.method = ""
        self.views: dict[str, WaferView] = {}
        self.rows: list[dict[str, Any]] = []
        self._build()
        lots = [x["name"] for x in store.lots(user)]
        self.lot_box.addItems(lots)
        if lot in lots:
            self.lot_box.setCurrentText(lot)
        self.resize(1300, 800)

    # ---- building -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.lot_box = QComboBox()
        self.lot_box.currentTextChanged.connect(self.load_lot)
        self.table = readonly_table(TABLE_COLUMNS)
        self.table.currentCellChanged.connect(lambda row, *_: self._table_row(row))
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.addWidget(QLabel("Lot"))
        lay.addWidget(self.lot_box)
        lay.addWidget(QLabel("Agreement, worst first"))
        lay.addWidget(self.table)
        self.annotator_list = QListWidget()
        self.annotator_list.setMaximumHeight(110)
        self.annotator_list.itemChanged.connect(lambda _: self._redraw())
        lay.addWidget(QLabel("Annotators compared"))
        lay.addWidget(self.annotator_list)

        self.mode_box = QComboBox()
        self.mode_box.addItems(MODES)
        self.mode_box.currentIndexChanged.connect(lambda _: self._redraw())
        self.view_area = QWidget()
        self.view_grid = QGridLayout(self.view_area)
        self.figures = QTextBrowser()
        self.figures.setMinimumWidth(300)
        self.consensus_view = WaferView()
        self.consensus_view.die_clicked.connect(self.take_region_at)
        self.take_from = QComboBox()
        self.zone_box = QComboBox()
        self.zone_box.addItems(["disputed dies", "whole wafer", *zones(np.ones((1, 1), np.uint8))])
        majority = QPushButton("Majority vote")
        majority.clicked.connect(self.majority)
        take = QPushButton("Take zone")
        take.clicked.connect(
            lambda: self.take_zone(self.take_from.currentText(), self.zone_box.currentText())
        )
        self.note = QLineEdit()
        self.note.setPlaceholderText("note for the record (optional)")
        self.save_button = QPushButton("Save consensus")
        self.save_button.clicked.connect(self.save_consensus)
        self.save_button.setEnabled(False)
        self.status = QLabel("")
        tools = QHBoxLayout()
        for w in (
            QLabel("View"),
            self.mode_box,
            majority,
            QLabel("take from"),
            self.take_from,
            self.zone_box,
            take,
            self.note,
            self.save_button,
        ):
            tools.addWidget(w)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addLayout(tools)
        body = QSplitter()
        body.addWidget(self.view_area)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.addWidget(
            QLabel("Consensus (click a disputed region to take it from the chosen annotator)")
        )
        sl.addWidget(self.consensus_view, 2)
        sl.addWidget(self.figures, 1)
        body.addWidget(side)
        body.setSizes([800, 400])
        rl.addWidget(body, 1)
        rl.addWidget(self.status)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([460, 940])  # the agreement table's six columns without scrolling
        outer = QVBoxLayout(self)
        outer.addWidget(split)

    # ---- the lot table ------------------------------------------------------------------------

    def load_lot(self, lot: str) -> list[dict[str, Any]]:
        """Fill the agreement table of a lot (worst first); keeps the figures when allowed."""
        self.rows = (
            lot_agreement(self.store, self.user, lot, save=self.user.can("review")) if lot else []
        )
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            kappa = r["kappa"]
            values = [
                r["wafer"],
                ", ".join(r["annotators"]),
                "—" if kappa != kappa else f"{kappa:.3f}",
                r["kappa_kind"],
                str(r["disputed_dies"]),
                "yes" if r["adjudicated"] else "",
            ]
            set_row(self.table, i, values)
        self.table.resizeColumnsToContents()
        if self.rows:
            self.table.selectRow(0)
        return self.rows

    def _table_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.open_wafer(self.rows[row]["wafer_id"])

    # ---- one wafer ----------------------------------------------------------------------------

    def open_wafer(self, wafer_id: int) -> None:
        """Load a wafer's annotators; all are compared until unchecked."""
        self.wafer_id = wafer_id
        self.masks = wafer_masks(self.store, self.user, wafer_id)
        self.annotator_list.blockSignals(True)
        self.annotator_list.clear()
        for name in sorted(self.masks.by_annotator):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.annotator_list.addItem(item)
        self.annotator_list.blockSignals(False)
        self.take_from.clear()
        self.take_from.addItems(sorted(self.masks.by_annotator))
        self.consensus = None if self.masks.consensus is None else self.masks.consensus.copy()
        self.method = "saved consensus" if self.consensus is not None else ""
        self.consensus_view.show_wafer(self.masks.wafer, self.consensus)
        self._redraw()

    def chosen(self) -> list[str]:
        """The checked annotators."""
        return [
            self.annotator_list.item(i).text()
            for i in range(self.annotator_list.count())
            if self.annotator_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_annotators(self, names: list[str]) -> None:
        """Check exactly these annotators."""
        for i in range(self.annotator_list.count()):
            item = self.annotator_list.item(i)
            item.setCheckState(
                Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked
            )

    def set_mode(self, mode: str) -> None:
        """Side by side, overlay diff or disagreement map."""
        self.mode_box.setCurrentIndex(MODES.index(mode))

    def _clear_views(self) -> None:
        while self.view_grid.count():
            item = self.view_grid.takeAt(0)
            if w := item.widget():
                w.hide()  # at once: a window grabbed before the event loop runs shows no old title
                w.deleteLater()
        self.views = {}

    def _add_view(self, title: str, k: int) -> WaferView:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel(title))
        view = WaferView()
        lay.addWidget(view, 1)
        self.view_grid.addWidget(box, k // 2, k % 2)
        self.views[title] = view
        return view

    def _redraw(self) -> None:
        self._clear_views()
        wm = self.masks
        names = self.chosen()
        if wm is None or not names:
            self.figures.setHtml("<p>Pick a wafer and at least one annotator.</p>")
            return
        grid = wm.wafer.grid
        ms = [wm.by_annotator[n] for n in names]
        mode = self.mode_box.currentText()
        if mode == "Side by side" or len(ms) < 2:
            for k, n in enumerate(names):
                self._add_view(n, k).show_wafer(wm.wafer, wm.by_annotator[n])
        elif mode == "Overlay diff":
            v = self._add_view(" vs ".join(names), 0)
            v.show_wafer(wm.wafer)
            v.set_image(diff_image(ms, grid))
            v.set_overlay_opacity(1.0)
        else:
            v = self._add_view("Disagreement: distinct classes per die − 1", 0)
            v.show_wafer(wm.wafer)
            v.set_image(
                heat_image(disagreement(ms, grid).astype(float), grid > 0, max(1, len(ms) - 1))
            )
            v.set_overlay_opacity(1.0)
        self.figures.setHtml(self._figures_html(names))

    def _figures_html(self, names: list[str]) -> str:
        wm = self.masks
        assert wm is not None
        if len(names) < 2:
            return f"<p>{names[0]} alone: agreement needs two annotators.</p>"
        rep: dict[str, Any] = agreement_report(
            {n: wm.by_annotator[n] for n in names}, wm.wafer.grid
        )
        html = [
            f"<h3>Wafer {wm.wafer.wafer_id}</h3>",
            f"<p><b>{rep['kappa_kind'].title()} kappa {rep['kappa']:.3f}</b>; "
            f"{rep['disputed_dies']} disputed dies</p>",
            "<table border=1 cellspacing=0 cellpadding=2><tr><th>pair</th><th>class</th>"
            "<th>IoU</th><th>Dice</th></tr>",
        ]
        for p in rep["pairs"]:
            for cname, d in p["per_class"].items():
                html.append(
                    f"<tr><td>{p['a']}–{p['b']}</td><td>{cname}</td>"
                    f"<td>{d['iou']:.3f}</td><td>{d['dice']:.3f}</td></tr>"
                )
        html.append(
            "</table><p><b>Agreement per zone</b></p><table border=1 cellspacing=0 cellpadding=2>"
        )
        for zone, v in rep["zones"].items():
            html.append(f"<tr><td>{zone}</td><td>{'—' if v is None else f'{v:.0%}'}</td></tr>")
        html.append("</table>")
        return "".join(html)

    # ---- adjudication -------------------------------------------------------------------------

    def _set_consensus(self, mask: Mask, method: str) -> None:
        self.consensus, self.method = mask, method
        assert self.masks is not None
        self.consensus_view.set_mask(mask)
        self.save_button.setEnabled(self.user.can("review"))
        counts = ", ".join(
            f"{c.name} {int((mask == c.id).sum())} dies"
            for c in CLASSES[1:]
            if (mask == c.id).any()
        )
        self.status.setText(f"Consensus ({method}): {counts or 'no pattern'} — not saved yet")

    def majority(self) -> Mask:
        """Start the consensus from the majority vote of the chosen annotators."""
        assert self.masks is not None
        names = self.chosen() or sorted(self.masks.by_annotator)
        mask = majority_vote([self.masks.by_annotator[n] for n in names], self.masks.wafer.grid)
        self._set_consensus(mask, "majority vote")
        return mask

    def _base(self) -> Mask:
        return self.consensus if self.consensus is not None else self.majority()

    def take_zone(self, annotator: str, zone: str) -> Mask:
        """Take a zone (or every disputed die, or the whole wafer) from one annotator."""
        assert self.masks is not None
        grid = self.masks.wafer.grid
        names = self.chosen() or sorted(self.masks.by_annotator)
        if zone == "disputed dies":
            region = disagreement([self.masks.by_annotator[n] for n in names], grid) > 0
        elif zone == "whole wafer":
            region = grid > 0
        else:
            region = zones(grid)[zone]
        mask = pick_regions(self._base(), self.masks.by_annotator, [(region, annotator)], grid)
        self._set_consensus(mask, "chosen per region")
        return mask

    def take_region_at(self, row: int, col: int) -> Mask | None:
        """Take the disputed region under a die from the annotator chosen in 'take from'."""
        if self.masks is None or not self.take_from.currentText():
            return None
        grid = self.masks.wafer.grid
        names = self.chosen() or sorted(self.masks.by_annotator)
        disputed = disagreement([self.masks.by_annotator[n] for n in names], grid) > 0
        region = connected_region(disputed, row, col)
        if not region.any():
            self.status.setText(f"die ({row}, {col}) is not disputed")
            return None
        mask = pick_regions(
            self._base(), self.masks.by_annotator, [(region, self.take_from.currentText())], grid
        )
        self._set_consensus(mask, "chosen per region")
        return mask

    def save_consensus(self) -> list[int]:
        """Save the consensus as the wafer's consensus annotations, with this reviewer."""
        if self.consensus is None or self.wafer_id < 0:
            return []
        ids = self.store.save_consensus(
            self.user, self.wafer_id, self.consensus, method=self.method, note=self.note.text()
        )
        self.status.setText(f"Consensus saved by {self.user.name} ({self.method})")
        self.save_button.setEnabled(False)
        self.consensus_saved.emit(self.wafer_id)
        row = self.table.currentRow()
        if 0 <= row < self.table.rowCount():
            self.table.setItem(row, 5, QTableWidgetItem("yes"))
        return ids
