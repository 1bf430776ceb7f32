import json
import os
import subprocess
import sys

import numpy as np
from PySide6.QtCore import QPoint, Qt

from app.main_window import MainWindow
from app.render import CLASS_COLOURS, DIE_COLOURS, grid_image, mask_image
from waferseg_core.classes import WAFER_LABELS
from waferseg_core.demo import DEMO_COUNT

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make(qtbot, demo_store, predictor, settings, wait=True):
    store, user = demo_store
    win = MainWindow(store, user, predictor, settings)  # opens the first lot and starts predicting
    qtbot.addWidget(win)
    if wait:
        with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
            pass
    return win


def test_lot_is_predicted_in_a_worker_and_listed_worst_first(
    qtbot, demo_store, predictor, settings
):
    store, user = demo_store
    win = make(qtbot, demo_store, predictor, settings)
    assert win.browser.topLevelItemCount() == DEMO_COUNT
    fails = [float(win.browser.topLevelItem(i).text(3)) for i in range(DEMO_COUNT)]
    assert fails == sorted(fails, reverse=True)
    assert len(win.predictions) == DEMO_COUNT
    patterns = {win.browser.topLevelItem(i).text(1) for i in range(DEMO_COUNT)}
    assert patterns <= set(WAFER_LABELS)
    # The predictions were cached in the store, keyed by wafer content and model.
    cached = store.cached_prediction(user, win.wafer.content_hash, predictor.hash)
    assert (
        cached is not None
        and cached["pattern"] == win.predictions[win.current_wafer_id()]["pattern"]
    )


def test_ui_stays_responsive_while_predicting(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings, wait=False)
    # Right after opening, the GUI thread is free: it can switch wafers before the lot is done.
    win.step_wafer(1)
    assert win.wafer is not None
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        pass


def test_overlays_switch_between_annotations_and_prediction(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings)
    ann = win.annotation_mask()
    win.show_prediction.setChecked(True)
    pred = win.predictions[win.current_wafer_id()]["mask"]
    img = win.view._mask_item.pixmap().toImage()
    r, c = np.argwhere(pred >= 0)[len(pred.ravel()) // 2]
    assert img.pixel(int(c), int(r)) == int(CLASS_COLOURS[pred[r, c]])
    win.show_annotations.setChecked(True)
    img = win.view._mask_item.pixmap().toImage()
    assert img.pixel(int(c), int(r)) == int(CLASS_COLOURS[ann[r, c]])
    win.show_nothing.setChecked(True)
    assert win.view._mask_item.pixmap().isNull()


def test_next_wafer_key(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.view.setFocus()
    first = win.current_wafer_id()
    qtbot.keyClick(win.view, Qt.Key.Key_PageDown)
    assert win.current_wafer_id() != first


def test_status_bar_reads_the_die_under_the_cursor(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings)
    win.resize(900, 700)
    win.show()
    qtbot.waitExposed(win)
    w = win.wafer
    r, c = w.rows // 2, w.cols // 2
    pos = win.view.mapFromScene(c + 0.5, r + 0.5)
    assert win.view.die_at(pos.toPointF()) == (r, c)
    qtbot.mouseMove(win.view.viewport(), QPoint(pos.x(), pos.y()))
    win.view.die_hovered.emit(r, c)
    msg = win.statusBar().currentMessage()
    assert f"die r{r} c{c}" in msg and {0: "no die", 1: "pass", 2: "fail"}[int(w.grid[r, c])] in msg
    assert "predicted" in msg


def test_select_wafer_and_state_persists(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings)
    assert win.select_wafer("7") and win.wafer.wafer_id == "7"
    assert not win.select_wafer("no-such-wafer")
    win.show()
    win.close()
    assert settings.value("window/state") is not None


def test_images_hold_one_pixel_per_die_in_the_right_colour(demo_store):
    store, user = demo_store
    w = store.wafer(user, store.list_wafers(user)[0]["id"])
    img = grid_image(w.grid)
    assert (img.width(), img.height()) == (w.cols, w.rows)
    r, c = w.rows // 2, w.cols // 2
    assert img.pixel(c, r) == int(DIE_COLOURS[w.grid[r, c]])
    mask = np.zeros(w.shape, np.uint8)
    mask[1, 2] = 8
    assert mask_image(mask).pixel(2, 1) == int(CLASS_COLOURS[8])


def test_selftest_prints_the_contract(tmp_path):
    env = {**os.environ, "WAFERSEG_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "main.py"), "--selftest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["wafers"] == DEMO_COUNT and out["predicted"] == DEMO_COUNT and out["ms"] > 0
