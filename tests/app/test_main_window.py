import numpy as np
from PySide6.QtCore import QPoint, Qt

from app.main_window import make_window
from app.render import CLASS_COLOURS, DIE_COLOURS, grid_image, mask_image
from waferseg_core.demo import DEMO_COUNT


def test_demo_lot_opens_worst_first(qtbot, demo_lot, settings):
    win = make_window(demo_lot, "demo-lot", settings)
    qtbot.addWidget(win)
    assert win.browser.topLevelItemCount() == DEMO_COUNT
    fails = [float(win.browser.topLevelItem(i).text(2)) for i in range(DEMO_COUNT)]
    assert fails == sorted(fails, reverse=True)
    shown = win.view.wafer
    assert shown is demo_lot[win.current_index()].wafer


def test_next_wafer_key_and_overlay_toggle(qtbot, demo_lot, settings):
    win = make_window(demo_lot, "demo-lot", settings)
    qtbot.addWidget(win)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.view.setFocus()
    first = win.current_index()
    qtbot.keyClick(win.view, Qt.Key.Key_PageDown)
    assert win.current_index() != first
    assert win.view.wafer is demo_lot[win.current_index()].wafer
    win.overlay_action.setChecked(False)
    assert not win.view._mask_item.isVisible()


def test_status_bar_reads_the_die_under_the_cursor(qtbot, demo_lot, settings):
    win = make_window(demo_lot, "demo-lot", settings)
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    qtbot.waitExposed(win)
    w = win.view.wafer
    r, c = w.rows // 2, w.cols // 2
    pos = win.view.mapFromScene(c + 0.5, r + 0.5)
    assert win.view.die_at(pos.toPointF()) == (r, c)
    qtbot.mouseMove(win.view.viewport(), QPoint(pos.x(), pos.y()))
    win.view.die_hovered.emit(r, c)
    state = {0: "no die", 1: "pass", 2: "fail"}[int(w.grid[r, c])]
    assert f"die r{r} c{c}" in win.statusBar().currentMessage()
    assert state in win.statusBar().currentMessage()


def test_images_hold_one_pixel_per_die_in_the_right_colour(demo_lot):
    cw = demo_lot[0]
    img = grid_image(cw.wafer.grid)
    assert (img.width(), img.height()) == (cw.wafer.cols, cw.wafer.rows)
    for r, c in [(0, 0), (cw.wafer.rows // 2, cw.wafer.cols // 2)]:
        assert img.pixel(c, r) == int(DIE_COLOURS[cw.wafer.grid[r, c]]) or cw.wafer.grid[r, c] == 0
    mask = np.zeros(cw.wafer.shape, np.uint8)
    mask[1, 2] = 8
    m = mask_image(mask)
    assert m.pixel(2, 1) == int(CLASS_COLOURS[8])


def test_window_state_persists(qtbot, demo_lot, settings):
    win = make_window(demo_lot, "demo-lot", settings)
    qtbot.addWidget(win)
    win.show()
    win.close()
    assert settings.value("window/state") is not None


def test_select_wafer_by_id(qtbot, demo_lot, settings):
    win = make_window(demo_lot, "demo-lot", settings)
    qtbot.addWidget(win)
    assert win.select_wafer("7")
    assert win.view.wafer.wafer_id == "7"
    assert not win.select_wafer("no-such-wafer")
