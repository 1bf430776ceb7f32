from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.main_window import MainWindow
from waferseg_core import formats
from waferseg_core.synth import generate_wafer


def test_open_a_folder_imports_the_good_files_and_reports_the_bad(
    qtbot, demo_store, predictor, settings, tmp_path
):
    store, user = demo_store
    tmp_path = tmp_path / "in"  # apart from the store and the demo lot's home
    tmp_path.mkdir()
    for i in range(2):
        w = generate_wafer(31, i).wafer
        w.lot, w.wafer_id = "LOT-X", str(i + 1)
        formats.write([w], tmp_path / f"w{i}.xml", "g85")
    (tmp_path / "broken.xml").write_text("<Maps><Map>")
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.import_finished, timeout=60_000) as sig:
        win.import_paths([str(tmp_path)])
    lots, errors = sig.args
    assert lots == {"LOT-X": 2} and len(errors) == 1 and "broken.xml" in errors[0]
    assert "LOT-X" in [lot["name"] for lot in store.lots(user)]
    assert win.lot_box.currentText() == "LOT-X" and win.browser.topLevelItemCount() == 2
    assert win.recent()[0] == str(tmp_path)


def test_drop_files_on_the_window(qtbot, demo_store, predictor, settings, tmp_path):
    store, user = demo_store
    w = generate_wafer(32, 0).wafer
    w.lot, w.wafer_id = "DROPPED", "1"
    formats.write([w], tmp_path / "w.sinf", "sinf")
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "w.sinf"))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(win.import_finished, timeout=60_000) as sig:
        win.dropEvent(event)
    assert sig.args[0] == {"DROPPED": 1}


def test_a_lot_already_imported_is_refused_whole(qtbot, demo_store, predictor, settings, tmp_path):
    store, user = demo_store
    w = generate_wafer(33, 0).wafer
    w.lot, w.wafer_id = "TWICE", "1"
    formats.write([w], tmp_path / "w.xml", "g85")
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.import_finished, timeout=60_000):
        win.import_paths([str(tmp_path / "w.xml")])
    with qtbot.waitSignal(win.import_finished, timeout=60_000) as sig:
        win.import_paths([str(tmp_path / "w.xml")])
    assert sig.args[0] == {} and "already holds" in sig.args[1][0]


def test_cancel_in_the_progress_dialog_stops_the_import(
    qtbot, demo_store, predictor, settings, tmp_path
):
    store, user = demo_store
    for i in range(30):
        w = generate_wafer(34, i).wafer
        w.lot, w.wafer_id = "CANCELLED", str(i + 1)
        formats.write([w], tmp_path / f"w{i}.xml", "g85")
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.import_finished, timeout=60_000) as sig:
        win.import_paths([str(tmp_path)])
        # The user's Cancel, while the worker thread reads: it must reach the running worker
        # (a queued call would wait until the import was over).
        win.import_dialog.canceled.emit()
    assert sig.args == [{}, ["import cancelled; nothing was imported"]]
    assert "CANCELLED" not in [lot["name"] for lot in store.lots(user)]
