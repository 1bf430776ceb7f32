import json
import os
import subprocess
import sys

import numpy as np
from PySide6.QtCore import QPoint, Qt

from app.main_window import FAIL_COL, MainWindow
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
    fails = [float(win.browser.topLevelItem(i).text(FAIL_COL)) for i in range(DEMO_COUNT)]
    assert fails == sorted(fails, reverse=True)
    assert len(win.predictions) == DEMO_COUNT
    patterns = {win.browser.topLevelItem(i).text(1) for i in range(DEMO_COUNT)}
    assert patterns <= set(WAFER_LABELS)
    # Conf. is the head's probability of the pattern called, not the die-mean confidence.
    for i in range(DEMO_COUNT):
        item = win.browser.topLevelItem(i)
        pred = win.predictions[int(item.data(0, Qt.ItemDataRole.UserRole))]
        assert item.text(2) == f"{pred['pattern_probability']:.2f}"
    assert "pattern called" in win.browser.headerItem().toolTip(2)
    assert "probability of" in win.prediction_label.text()
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
    ann = win.editor.mask()
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


def test_heatmaps_defects_filter_and_thumbnails(qtbot, demo_store, predictor, settings):
    from waferseg_core.wafer import Defect

    win = make(qtbot, demo_store, predictor, settings)
    assert not win.browser.topLevelItem(0).icon(0).isNull()  # a thumbnail per wafer
    assert win.browser.topLevelItem(0).text(3) != ""  # uncertainty column
    win.filter_box.setText("none")
    shown = [
        i
        for i in range(win.browser.topLevelItemCount())
        if not win.browser.topLevelItem(i).isHidden()
    ]
    assert shown and all(win.browser.topLevelItem(i).text(1) == "none" for i in shown)
    win.filter_box.setText("")
    win.show_confidence.setChecked(True)
    img = win.view._mask_item.pixmap().toImage()
    assert (img.width(), img.height()) == (win.wafer.cols, win.wafer.rows)
    win.show_entropy.setChecked(True)
    assert not win.view._mask_item.pixmap().isNull()
    win.wafer.defects = (Defect(3, 4, 1.0, 2.0, 0.5, 1),)
    win._update_overlay()
    assert not win.view._points_item.path().isEmpty()
    win.show_defects.setChecked(False)
    assert win.view._points_item.path().isEmpty()


def test_accept_predictions_for_the_whole_lot(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    win = make(qtbot, demo_store, predictor, settings)
    assert win.accept_lot_predictions() == DEMO_COUNT
    for wid, pred in win.predictions.items():
        anns = store.annotations(user, wid)
        assert all(a["source"] == "model" for a in anns)
        assert sorted(a["class_id"] for a in anns) == sorted(
            int(c) for c in np.unique(pred["mask"]) if c
        )
    assert np.array_equal(win.editor.mask(), win.predictions[win.current_wafer_id()]["mask"])
    # Nothing was lost: the replaced annotations are in the history.
    assert any(h["action"] == "delete" for h in store.history(user, win.current_wafer_id()))


def test_viewer_pixel_snapshot(qtbot, demo_store, predictor, settings, tmp_path):
    """The wafer view of a fixed synthetic wafer renders to the same pixels every time."""
    from app.wafer_view import WaferView
    from waferseg_core.synth import generate_wafer

    sw = generate_wafer(2026, 5)
    view = WaferView()
    qtbot.addWidget(view)
    view.resize(240, 240)
    view.show_wafer(sw.wafer, sw.mask)
    view.fit()
    img = view.viewport().grab().toImage()
    ref_path = os.path.join(REPO, "tests", "data", "viewer_snapshot.png")
    if os.environ.get("WAFERSEG_UPDATE_SNAPSHOTS"):  # after an intended change of the rendering
        img.save(ref_path)
    from PySide6.QtGui import QImage

    ref = QImage(ref_path).convertToFormat(img.format())
    assert (ref.width(), ref.height()) == (img.width(), img.height())
    diff = sum(
        ref.pixel(x, y) != img.pixel(x, y)
        for x in range(0, img.width(), 3)
        for y in range(0, img.height(), 3)
    )
    assert diff == 0


def test_a_large_wafer_says_the_model_saw_it_on_blocks(qtbot, demo_store, predictor, settings):
    from waferseg_core.synth import first_sized

    store, user = demo_store
    win = make(qtbot, demo_store, predictor, settings)
    assert "blocks" not in win.prediction_label.text()  # demo wafers are small
    big = first_sized(4, over=200, limit=400).wafer
    store.import_lot(user, "BIG", [big])
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        win.refresh_lots()
        win.lot_box.setCurrentText("BIG")
    k = -(-max(big.shape) // 96)
    assert f"model view: {k}x{k} blocks" in win.prediction_label.text()


def test_first_run_shows_every_browser_column_and_every_tool(
    qtbot, demo_store, predictor, settings
):
    win = make(qtbot, demo_store, predictor, settings)
    win.resize(1280, 820)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.browser.viewport().width() > 300)
    widths = [win.browser.columnWidth(c) for c in range(win.browser.columnCount())]
    # Each column fits its contents ("Edge-Ring", "annotated"), and all of them fit the view.
    assert min(widths) >= 30
    assert sum(widths) <= win.browser.viewport().width()
    assert not win.browser.horizontalScrollBar().isVisible()
    from PySide6.QtWidgets import QToolBar

    for name in ("edit_toolbar", "view_toolbar"):
        bar = win.findChild(QToolBar, name)
        shown = {a.text(): bar.widgetForAction(a).isVisible() for a in bar.actions() if a.text()}
        assert shown and all(shown.values()), (name, shown)  # none behind the overflow arrow


def test_a_layout_saved_by_an_older_version_is_not_restored(qtbot, demo_store, predictor, settings):
    from PySide6.QtWidgets import QToolBar

    from app.main_window import LAYOUT_VERSION

    old = make(qtbot, demo_store, predictor, settings)
    bar = old.findChild(QToolBar, "edit_toolbar")
    old.removeToolBarBreak(bar)  # the edit toolbar back beside the others, as before version 1
    assert not old.toolBarBreak(bar)
    settings.setValue("window/state", old.saveState())  # saved with no version (0)
    new = make(qtbot, demo_store, predictor, settings)
    assert new.toolBarBreak(new.findChild(QToolBar, "edit_toolbar"))  # the default layout
    new.show()
    new.close()  # saves with the current version, which the next start restores
    assert new.restoreState(settings.value("window/state"), LAYOUT_VERSION)
