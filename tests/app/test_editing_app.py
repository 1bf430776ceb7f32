"""Editing in the real window: tools by simulated input, undo/redo, saving, conflicts."""

import numpy as np
from PySide6.QtCore import QPoint, Qt

from app.main_window import MainWindow
from waferseg_core.geometry import mask_from_geometry, polygon_from_rings


def window(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    win.resize(1000, 800)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        pass
    return win


def click(qtbot, win, x, y, double=False):
    p = win.view.mapFromScene(x, y)
    fn = qtbot.mouseDClick if double else qtbot.mouseClick
    fn(win.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(p.x(), p.y()))


def test_polygon_by_clicks_becomes_the_right_dies_and_is_saved(
    qtbot, demo_store, predictor, settings
):
    store, user = demo_store
    win = window(qtbot, demo_store, predictor, settings)
    before = len(store.annotations(user, win.current_wafer_id()))
    win.set_tool("polygon")
    win.editor.set_class(8)
    pts = [(10.0, 10.0), (16.0, 10.0), (16.0, 14.0)]
    for x, y in pts:
        click(qtbot, win, x, y)
    assert win.editor.draft and len(win.editor.draft) == 3
    win.editor.finish()  # Enter
    expected = mask_from_geometry(polygon_from_rings(win.editor.draft or pts), win.wafer.shape) & (
        win.wafer.grid > 0
    )
    region = win.editor.doc.regions[win.editor.selected]
    got = mask_from_geometry(region.geometry, win.wafer.shape) & (win.wafer.grid > 0)
    # Clicks land on pixels: the drawn outline is within a pixel of the intended one.
    assert abs(int(got.sum()) - int(expected.sum())) <= 3 and region.class_id == 8
    assert len(store.annotations(user, win.current_wafer_id())) == before + 1


def test_undo_redo_across_tools_keeps_the_store_in_step(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    win = window(qtbot, demo_store, predictor, settings)
    # A wafer without annotations (a "none" wafer of the demo lot), so the edits stand alone.
    blank = next(r for r in store.list_wafers(user) if not store.annotations(user, r["id"]))
    assert win.select_wafer(blank["wafer"])
    wid = win.current_wafer_id()
    original = win.editor.mask().copy()
    assert not original.any()

    def stored():
        return sorted((a["class_id"], str(a["geometry"])) for a in store.annotations(user, wid))

    stored0 = stored()
    cx, cy = win.wafer.cols // 2, win.wafer.rows // 2
    win.editor.set_class(5)
    win.set_tool("polygon")
    for x, y in [(cx - 4, cy - 4), (cx + 4, cy - 4), (cx + 4, cy + 4), (cx - 4, cy + 4)]:
        win.editor.press(x, y)
    win.editor.finish()
    win.set_tool("hole")  # the new polygon is selected
    for x, y in [(cx - 1, cy - 1), (cx + 1, cy - 1), (cx + 1, cy + 1), (cx - 1, cy + 1)]:
        win.editor.press(x, y)
    win.editor.finish()
    win.set_tool("brush")
    win.editor.brush_radius = 1
    win.editor.press(cx + 10.5, cy + 0.5)
    win.editor.move(cx + 12.5, cy + 0.5)
    win.editor.release()
    win.set_tool("ring")
    for p in [(cx - 12.0, cy - 12.0), (cx - 10.0, cy - 12.0), (cx - 8.0, cy - 12.0)]:
        win.editor.press(*p)
    edited = win.editor.mask().copy()
    assert win.editor.stack.count() == 4
    # The hole is empty, the polygon around it is Loc (5), the brush stroke left Loc dies.
    assert edited[cy, cx] == 0 and edited[cy - 3, cx - 3] == 5 and edited[cy, cx + 11] == 5
    for _ in range(4):
        win.editor.stack.undo()
    assert np.array_equal(win.editor.mask(), original)
    assert stored() == stored0
    for _ in range(4):
        win.editor.stack.redo()
    assert np.array_equal(win.editor.mask(), edited)
    win.editor.load(wid, win.wafer)  # what the store holds draws the same mask
    assert np.array_equal(win.editor.mask(), edited)


def test_accept_prediction_turns_the_mask_into_regions(qtbot, demo_store, predictor, settings):
    win = window(qtbot, demo_store, predictor, settings)
    pred = win.predictions[win.current_wafer_id()]["mask"]
    original = win.editor.mask().copy()
    win.accept_prediction()
    assert np.array_equal(win.editor.mask(), pred)
    assert win.editor.stack.count() == 1  # one undo step for the whole wafer
    win.editor.stack.undo()
    assert np.array_equal(win.editor.mask(), original)


def test_a_conflicting_save_is_shown_not_overwritten(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    bob = store.add_user(user, "bob", "annotator", "pw")
    win = window(qtbot, demo_store, predictor, settings)
    wid = win.current_wafer_id()
    key, region = next(iter(win.editor.doc.regions.items()))
    # Bob saves first, from the same version.
    store.save_annotation(
        bob,
        wid,
        1,
        store.annotations(user, wid)[0]["geometry"],
        annotation_id=region.store_id,
        base_version=region.version,
    )
    win.editor.selected = key
    with qtbot.waitSignal(win.editor.conflict, timeout=5000) as sig:
        win.editor.set_class(3)
    assert "bob" in sig.args[0]
    assert store.annotations(user, wid)[0]["class_id"] == 1  # Bob's save stands
    assert "bob" in win.statusBar().currentMessage()


def test_a_viewer_gets_no_editing_tools(qtbot, demo_store, predictor, settings):
    store, admin = demo_store
    viewer = store.add_user(admin, "vic", "viewer", "pw")
    win = MainWindow(store, viewer, predictor, settings)
    qtbot.addWidget(win)
    assert not win.edit_bar.isEnabled()
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        pass


def test_select_tool_drags_vertices_moves_regions_and_edits_vertices(
    qtbot, demo_store, predictor, settings
):
    store, user = demo_store
    win = window(qtbot, demo_store, predictor, settings)
    blank = next(r for r in store.list_wafers(user) if not store.annotations(user, r["id"]))
    win.select_wafer(blank["wafer"])
    cx, cy = win.wafer.cols // 2, win.wafer.rows // 2
    win.set_tool("polygon")
    for p in [(cx - 3, cy - 3), (cx + 3, cy - 3), (cx + 3, cy + 3), (cx - 3, cy + 3)]:
        win.editor.press(*p)
    win.editor.finish()
    win.set_tool("select")
    key = win.editor.selected
    # Drag the lower-right vertex outward: the region grows.
    assert win.editor.press(cx + 3.1, cy + 3.1) is True  # taken: the view does not pan
    win.editor.move(cx + 6, cy + 6)
    win.editor.release()
    assert win.editor.mask()[cy + 4, cx + 4] == 5
    # Drag inside the region: it moves by whole dies.
    before = win.editor.mask().copy()
    win.editor.press(cx, cy)
    win.editor.move(cx + 2.2, cy)
    win.editor.release()
    assert np.array_equal(win.editor.mask()[:, 2:], before[:, :-2])
    # Double-click on an edge inserts a vertex; Backspace on a vertex deletes it.
    ring = list(win.editor.doc.regions[key].geometry.exterior.coords)[:-1]
    (ax, ay), (bx, by) = ring[0], ring[1]
    mid = win.view.mapFromScene((ax + bx) / 2, (ay + by) / 2)
    qtbot.mouseDClick(win.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(mid.x(), mid.y()))
    assert len(win.editor.doc.regions[key].geometry.exterior.coords) - 1 == len(ring) + 1
    win.editor.press(ax, ay)
    win.editor.release()
    win.editor.back()
    assert len(win.editor.doc.regions[key].geometry.exterior.coords) - 1 == len(ring)
    assert win.editor.stack.count() == 5  # polygon, vertex drag, move, insert, delete
    stored = store.annotations(user, win.current_wafer_id())
    assert len(stored) == 1 and stored[0]["version"] == 5
