"""Screenshots of the main, review, dashboard, active-learning, similar-wafers and training windows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py docs/img
    xvfb-run -a .venv/bin/python scripts/screenshots.py docs/img       # the same under X

Builds a throw-away store in a temporary folder: the demo lot, a lot annotated by three people
who disagree the way real annotators do (a shifted edge, a missed scratch, a class swap), a small
training job run by the worker, an active-learning query, and a lot of one 200+-die wafer (the
main window names the blocks the model saw), and a real KLARF lot from ../shared/data when it
is there; then grabs each window, the main window also while drawing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def _annotators(store, admin, lot: str) -> None:  # type: ignore[no-untyped-def]
    from waferseg_core.synth import generate_wafer

    people = [store.add_user(admin, n, "annotator", "pw") for n in ("ana", "ben", "chen")]
    made = [generate_wafer(21, i) for i in range(12)]
    ids = store.import_lot(admin, lot, [sw.wafer for sw in made])
    rng = np.random.default_rng(0)
    for wid, sw in zip(ids, made, strict=True):
        for k, who in enumerate(people):
            mask = sw.mask.copy()
            if k == 1:  # ben draws the pattern a die or two wider
                grown = np.zeros_like(mask)
                for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                    grown = np.maximum(grown, np.roll(mask, (dr, dc), (0, 1)))
                mask = np.where(mask > 0, mask, grown)
            if k == 2 and rng.random() < 0.5:  # chen calls Loc what the others call Edge-Loc
                mask[mask == 3] = 5
            mask[sw.wafer.grid == 0] = 0
            store.replace_annotations(who, wid, mask, source="manual")


def _scale_comparison():  # type: ignore[no-untyped-def]
    """A large wafer: its true mask, the model at full scale, at the coarse scale, in phases."""
    from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

    from app.wafer_view import WaferView
    from waferseg_core import coarse
    from waferseg_core.classes import CLASSES, by_name
    from waferseg_core.inference import Predictor
    from waferseg_core.synth import generate

    sw = next(
        w
        for w in generate(1000, 999, mixed=0.15)
        if w.patterns == ("Donut",) and max(w.wafer.grid.shape) > 150
    )
    with coarse.constants(max_side=0):
        full = Predictor(cache_size=1).predict([sw.wafer])[0].mask
    now = Predictor(cache_size=1).predict([sw.wafer])[0].mask
    phased = Predictor(cache_size=1, phases=4).predict([sw.wafer])[0].mask
    rows, cols = sw.wafer.grid.shape
    k = coarse.factor(sw.wafer.grid.shape)
    # What the full-scale model calls the ring's dies, counted rather than assumed: it changes
    # from model to model (an earlier model read half the ring as Loc, a later one Random).
    ring = full[sw.mask == by_name("Donut").id]
    shares = np.bincount(ring, minlength=len(CLASSES)) / max(ring.size, 1)
    said = ", ".join(
        f"{CLASSES[c].name} {shares[c]:.0%}" for c in np.argsort(-shares)[:2] if shares[c] > 0.05
    )
    panel = QWidget()
    grid = QGridLayout(panel)
    titles = (
        f"true mask ({rows} x {cols} dies)",
        f"model at full scale: the ring's dies read as {said}",
        f"model on {k}x{k} blocks (waferseg_core/coarse.py)",
        f"{k}x{k} blocks, four block grids averaged (--phases 4)",
    )
    masks = (sw.mask, full, now, phased)
    for col, (title, mask) in enumerate(zip(titles, masks, strict=True)):
        grid.addWidget(QLabel(title), 0, col)
        view = WaferView()
        view.show_wafer(sw.wafer, mask)
        grid.addWidget(view, 1, col)
        grid.setColumnStretch(col, 1)  # equal panels, whatever their titles' length
    panel.views = [grid.itemAt(i).widget() for i in range(grid.count())]  # type: ignore[attr-defined]
    return panel


def _main_window(store, admin, predictor, tmp: Path, app, lot: str):  # type: ignore[no-untyped-def]
    """The main window on ``lot``, once the lot is predicted."""
    import time

    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    settings = QSettings(str(tmp / f"shots-{lot}.ini"), QSettings.Format.IniFormat)
    win = MainWindow(store, admin, predictor, settings)
    win.refresh_lots()
    win.lot_box.setCurrentText(lot)
    until = time.monotonic() + 60
    while not win.predictions and time.monotonic() < until:
        app.processEvents()
        time.sleep(0.02)
    return win


def _draw(win) -> None:  # type: ignore[no-untyped-def]
    """On the wafer shown: an Edge-Loc polygon, a Donut ring, and a Scratch polygon in progress."""
    rows, cols = win.wafer.shape

    def at(tool: str, class_id: int, points: list[tuple[float, float]]) -> None:
        win.set_tool(tool)
        win.editor.selected = None  # a class key re-classes the selected region: pick none
        win.editor.set_class(class_id)
        for fx, fy in points:  # fractions of the grid: x along the columns, y down the rows
            win.editor.press(fx * cols, fy * rows)
            win.editor.release()

    at("polygon", 3, [(0.6, 0.18), (0.8, 0.28), (0.76, 0.44), (0.6, 0.34)])
    win.editor.finish()
    at("ring", 2, [(0.5, 0.55), (0.64, 0.55), (0.72, 0.55)])
    at("polygon", 8, [(0.22, 0.74), (0.32, 0.8), (0.4, 0.74)])  # left open: a draft


REPO = Path(__file__).resolve().parent.parent
KLARF = "formats/klarf/wafermapclustering__QUU_NUU.000"  # real KLARF 1.2, three wafers


def _klarf_window(store, admin, predictor, tmp: Path, app):  # type: ignore[no-untyped-def]
    """The main window on a real KLARF lot from ../shared/data, or None when it is absent."""
    from waferseg_core.formats import read

    data = Path(os.environ.get("WAFERSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (data / KLARF).is_file():
        print(f"skipped klarf-lot.png: {data / KLARF} is absent")
        return None
    store.import_lot(admin, "QUU", read(data / KLARF))
    win = _main_window(store, admin, predictor, tmp, app, "QUU")
    win.select_wafer("01")
    win.show_prediction.setChecked(True)
    return win


def _stacked_lot(store, admin, predictor):  # type: ignore[no-untyped-def]
    """The dashboard's stacked map of the real dev wafers of their commonest grid, as one lot.

    WM-811K lots hold a wafer or two each, too few to stack; shows the model's Edge-Loc. None
    when the data is absent.
    """
    from collections import Counter

    from app.dashboard import DashboardWindow
    from waferseg_core.formats.wm811k import read_npz

    data = Path(os.environ.get("WAFERSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
    npz = data / "wm811k" / "wm811k_dev.npz"
    if not npz.is_file():
        print(f"skipped dashboard-stacked.png: {npz} is absent")
        return None
    maps = read_npz(npz)
    shape = Counter(m.shape for m in maps).most_common(1)[0][0]
    same = [m for m in maps if m.shape == shape]
    name = f"WM811K-{shape[0]}x{shape[1]}"
    for m in same:
        m.lot, m.wafer_id = name, f"{m.lot}-{m.wafer_id}"
    store.import_lot(admin, name, same)
    dash = DashboardWindow(store, admin, predictor)
    dash.lot_box.setCurrentText(name)
    dash.tabs.setCurrentIndex(3)
    dash.stack_box.setCurrentText("Edge-Loc")
    return dash


def _large_wafer_window(store, admin, predictor, tmp: Path, app):  # type: ignore[no-untyped-def]
    """The main window on a lot of one 200+-die wafer, predicted: the panel names the blocks."""
    from waferseg_core.synth import generate_wafer

    big = next(
        sw.wafer
        for i in range(400)
        if max((sw := generate_wafer(4, i)).wafer.shape) > 200 and sw.mask.any()
    )
    store.import_lot(admin, "LOT-300MM", [big])
    win = _main_window(store, admin, predictor, tmp, app, "LOT-300MM")
    win.show_prediction.setChecked(True)
    return win


def _similar(store, admin, predictor, app):  # type: ignore[no-untyped-def]
    """The similar-wafers window, searched from the demo lot's first Edge-Ring wafer."""
    import time

    from app.similar_panel import SimilarPanel

    rows = store.list_wafers(admin, lot="demo-lot", model_hash=predictor.hash)
    target = next(r for r in rows if r["pattern"] == "Edge-Ring")
    panel = SimilarPanel(store, admin, predictor)
    found: list[int] = []
    panel.searched.connect(found.append)
    panel.search(target["id"], f"demo-lot / wafer {target['wafer']} (Edge-Ring)")
    until = time.monotonic() + 60
    while not found and time.monotonic() < until:
        app.processEvents()
        time.sleep(0.02)
    return panel


def main() -> None:
    """Build the store, open each window, save its screenshot."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="waferseg-shots-"))
    os.environ["WAFERSEG_HOME"] = str(tmp / "home")
    from PySide6.QtWidgets import QApplication

    from app.al_panel import ALPanel
    from app.dashboard import DashboardWindow
    from app.review_view import ReviewWindow
    from app.training_monitor import TrainingMonitor
    from waferseg_core.demo import ensure_demo_store
    from waferseg_core.inference import Predictor
    from waferseg_core.ml.worker import work
    from waferseg_core.store.al_ops import query
    from waferseg_core.store.service import Store

    app = QApplication.instance() or QApplication([])
    store = Store(f"sqlite:///{tmp / 'store.sqlite'}")
    admin = store.login()
    ensure_demo_store(store, admin)
    _annotators(store, admin, "LOT-R7")
    predictor = Predictor()
    job = store.enqueue_job(
        admin,
        {
            "synth": 60,
            "arch": "resnet18-w0.25",
            "epochs": 4,
            "batch_size": 16,
            "epoch_size": 64,
            "device": "cpu",
            "name": "screenshot run",
        },
    )
    work(store, tmp / "jobs", once=True)

    def shot(widget, name: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
        widget.resize(*size)
        widget.show()
        for _ in range(5):
            app.processEvents()
        widget.grab().save(str(out / name), "PNG")
        print(out / name)

    review = ReviewWindow(store, admin, "LOT-R7")
    review.set_mode("Side by side")
    review.majority()
    shot(review, "review-side-by-side.png", (1400, 820))
    review.set_mode("Overlay diff")
    shot(review, "review-overlay-diff.png", (1400, 820))
    dash = DashboardWindow(store, admin, predictor)
    dash.lot_box.setCurrentText("LOT-R7")
    shot(dash, "dashboard-lot.png", (1000, 620))
    dash.tabs.setCurrentIndex(2)
    shot(dash, "dashboard-confusion.png", (1000, 620))
    from waferseg_core.synth import generate_wafer

    fresh = [generate_wafer(77, i).wafer for i in range(60)]
    for i, w in enumerate(fresh):
        w.wafer_id = f"Q9-{i + 1:02d}"
    store.import_lot(admin, "LOT-Q9", fresh)
    query(store, admin, predictor, "margin", 12)  # every lot's unannotated wafers
    al = ALPanel(store, admin, predictor)
    al.strategy.setCurrentText("margin")
    al.budget.setValue(12)
    shot(al, "al-queue.png", (860, 460))
    shot(_similar(store, admin, predictor, app), "similar-wafers.png", (640, 600))
    mon = TrainingMonitor(store, admin, refresh_ms=60_000)
    mon.select_job(job)
    shot(mon, "training-monitor.png", (1300, 700))
    panel = _scale_comparison()
    panel.resize(1800, 500)
    panel.show()
    for w in panel.views:
        if hasattr(w, "fit"):
            app.processEvents()
            w.fit()
    shot(panel, "large-wafer-scale.png", (1800, 500))
    shot(
        _large_wafer_window(store, admin, predictor, tmp, app),
        "large-wafer-blocks.png",
        (1400, 850),
    )
    # The demo lot, worst first: a mixed Donut + Edge-Loc wafer with its annotations, the
    # model's reading of a scratch wafer, and its uncertainty on the mixed wafer.
    demo = _main_window(store, admin, predictor, tmp, app, "demo-lot")
    demo.select_wafer("22")
    shot(demo, "main-window.png", (1280, 820))
    demo.select_wafer("3")
    demo.show_prediction.setChecked(True)
    shot(demo, "prediction-overlay.png", (1280, 820))
    demo.select_wafer("22")
    demo.show_entropy.setChecked(True)
    shot(demo, "entropy-heatmap.png", (1280, 820))
    demo.select_wafer("14")  # an Edge-Ring wafer
    _draw(demo)
    shot(demo, "editing.png", (1280, 820))
    stacked = _stacked_lot(store, admin, predictor)
    if stacked is not None:
        shot(stacked, "dashboard-stacked.png", (1000, 620))
    klarf = _klarf_window(store, admin, predictor, tmp, app)
    if klarf is not None:
        shot(klarf, "klarf-lot.png", (1280, 820))
    store.close()


if __name__ == "__main__":
    main()
