import shutil

from app.dialogs import LoginDialog
from app.main_window import MainWindow
from waferseg_core import settings as prefs_io
from waferseg_core.inference import DEFAULT_FP32, DEFAULT_MODEL, file_hash


def test_model_selector_lists_store_versions_and_switches(
    qtbot, demo_store, predictor, settings, tmp_path
):
    store, user = demo_store
    copy = tmp_path / "v2.onnx"
    shutil.copy(DEFAULT_MODEL, copy)  # a model version in the store, as a worker records one
    store.register_model(user, "candidate v2", str(copy), file_hash(copy))
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    labels = [win.model_box.itemText(i) for i in range(win.model_box.count())]
    assert (
        labels[:2] == ["shipped default", "shipped default, fp32"]
        and "candidate v2" in labels
        and labels[-1].startswith("other")
    )
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        assert win.set_model(str(copy))
    assert win.predictor.path == copy and win.model_box.currentText() == "candidate v2"
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        assert win.set_model(str(DEFAULT_FP32))
    assert win.model_box.currentText() == "shipped default, fp32"
    with qtbot.waitSignal(win.lot_predicted, timeout=60_000):
        assert win.set_model(str(copy))
    assert not win.set_model(str(tmp_path / "missing.onnx"))  # reported, the old model stays
    assert win.predictor.path == copy


def test_settings_dialog_saves_and_applies(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    win = MainWindow(store, user, predictor, settings)
    qtbot.addWidget(win)
    dialog = win.open_settings()
    assert dialog.shortcuts.rowCount() > 10  # the shortcut list shows the keys
    dialog.brush.setValue(3.0)
    dialog.opacity.setValue(0.8)
    dialog.accept()
    assert win.editor.brush_radius == 3.0 and win.opacity.value() == 80
    saved = prefs_io.load()
    assert saved.brush_radius == 3.0 and saved.overlay_opacity == 0.8


def test_login_dialog_checks_the_password(qtbot, demo_store):
    store, admin = demo_store
    store.add_user(admin, "ann", "annotator", "secret")
    dialog = LoginDialog(store)
    qtbot.addWidget(dialog)
    dialog.name.setText("ann")
    dialog.password.setText("wrong")
    dialog.try_login()
    assert (
        dialog.user is None
        and "login failed" in dialog.error.text()
        and dialog.password.text() == ""
    )
    dialog.password.setText("secret")
    dialog.try_login()
    assert dialog.user is not None and dialog.user.role == "annotator"


def test_settings_file_is_typed_and_checked(tmp_path):
    p = tmp_path / "s.json"
    prefs_io.save(prefs_io.Settings(brush_radius=2.5), p)
    assert prefs_io.load(p).brush_radius == 2.5
    p.write_text('{"brush_radius": 999, "unknown": 1}')
    assert prefs_io.load(p) == prefs_io.Settings()  # out of range: defaults, never a crash
    p.write_text("not json")
    assert prefs_io.load(p) == prefs_io.Settings()
