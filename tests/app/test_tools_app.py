"""The main window's tools: AL queue panel, the tool windows from the menus, exports."""

import csv
from collections import Counter

from app.al_panel import COLUMNS, ALPanel, mix_note
from app.dashboard import DashboardWindow
from app.review_view import ReviewWindow
from app.training_monitor import TrainingMonitor
from tests.app.test_main_window import make
from waferseg_core import formats
from waferseg_core.demo import DEMO_COUNT, DEMO_LOT
from waferseg_core.ml.worker import work


def test_al_panel_queries_and_opens_wafers_in_order(qtbot, demo_store, predictor, settings):
    store, user = demo_store
    new = [r for r in store.list_wafers(user, lot=DEMO_LOT) if r["status"] == "new"]
    assert len(new) >= 2
    win = make(qtbot, demo_store, predictor, settings)
    panel = win.open_al()
    assert isinstance(panel, ALPanel) and win.open_al() is panel  # one window, kept
    assert panel.strategy.currentText() == "coreset"  # the best measured, preselected
    panel.strategy.setCurrentText("entropy")
    panel.budget.setValue(5)
    panel.lot.setCurrentText(DEMO_LOT)
    n = min(5, len(new))
    assert panel.run_query() == n
    assert [r["rank"] for r in panel.rows] == list(range(1, n + 1))
    assert panel.table.rowCount() == n and f"{n} queued" in panel.status.text()
    shown = [panel.table.item(i, COLUMNS.index("Predicted")).text() for i in range(n)]
    assert shown == [r["predicted"] for r in panel.rows] and all(shown)
    assert f"predicted {Counter(shown).most_common(1)[0][0]}" in panel.status.text()
    assert {r["wafer_id"] for r in panel.rows} <= {r["id"] for r in new}
    first = next(r for r in panel.rows if r["wafer_status"] == "new")
    with qtbot.waitSignal(panel.open_wafer) as sig:
        assert panel.open_next()
    assert sig.args == [first["lot"], first["wafer"]]
    assert win.browser.currentItem().text(0) == first["wafer"]  # the main window followed


def test_mix_note_warns_when_one_pattern_fills_the_queue():
    rows = [{"predicted": p} for p in ["Donut"] * 7 + ["Loc"] * 3 + [None]]
    assert mix_note(rows) == (
        "predicted Donut 7, Loc 3 — over half Donut: core-set or random would spread the picks"
    )
    assert mix_note(rows[4:]) == "predicted Donut 3, Loc 3"  # too few to warn about
    assert mix_note([{"predicted": None}]) == ""


def test_bald_from_the_panel_becomes_a_worker_job(qtbot, demo_store, predictor, tmp_path):
    store, user = demo_store
    panel = ALPanel(store, user, predictor)
    qtbot.addWidget(panel)
    panel.strategy.setCurrentText("bald")
    panel.checkpoint.setText(str(tmp_path / "missing.pt"))
    assert panel.run_query() == 0 and "queued as job" in panel.status.text()
    (job,) = store.jobs(user)
    assert job["kind"] == "al_query" and job["config"]["strategy"] == "bald"
    assert work(store, tmp_path / "jobs", once=True) == 1
    failed = store.job(user, job["id"])
    assert failed["status"] == "failed" and "missing.pt" in failed["error_text"]


def test_menus_open_each_tool(qtbot, demo_store, predictor, settings):
    win = make(qtbot, demo_store, predictor, settings)
    titles = {a.text() for m in win.menuBar().actions() for a in m.menu().actions()}
    assert {"Compare annotators…", "Dashboard…", "Training monitor…"} <= titles
    # The Export lot menu offers every kind the exporter writes, KLARF included.
    from app.tools import EXPORTS
    from waferseg_core.exports import KINDS

    (export,) = [
        a.menu()
        for m in win.menuBar().actions()
        for a in m.menu().actions()
        if a.text() == "Export lot"
    ]
    assert [a.text() for a in export.actions()] == [EXPORTS[k][0] for k in KINDS]
    assert isinstance(win.open_review(), ReviewWindow)
    assert isinstance(win.open_dashboard(), DashboardWindow)
    mon = win.open_training()
    assert isinstance(mon, TrainingMonitor)
    mon.timer.stop()
    assert win.open_review().lot_box.currentText() == DEMO_LOT
    for w in win.tools.values():
        w.close()


def test_export_from_the_window_and_cancel(qtbot, demo_store, predictor, settings, tmp_path):
    win = make(qtbot, demo_store, predictor, settings)
    out = tmp_path / "lot.csv"
    worker = win.export_lot("csv", str(out))
    with qtbot.waitSignal(worker.done, timeout=60_000) as sig:
        pass
    assert sig.args[0]["wafers"] == DEMO_COUNT
    assert len(list(csv.DictReader(out.open()))) == DEMO_COUNT
    assert win._export[2].maximum() == DEMO_COUNT  # the dialog followed the progress
    # KLARF: the lot in one file, a defect per failing die (synthetic wafers have no
    # inspection defects), classified by the die's class.
    worker = win.export_lot("klarf", str(tmp_path / "lot.klarf"))
    with qtbot.waitSignal(worker.done, timeout=60_000):
        pass
    maps = formats.read(tmp_path / "lot.klarf")
    assert len(maps) == DEMO_COUNT and all(len(m.defects) == m.fail_dies for m in maps)
    assert {d.class_code for m in maps for d in m.defects} > {0}
    worker = win.export_lot("png", str(tmp_path / "masks"))
    # The dialog's Cancel reaches the running worker (queued, it would wait until the end).
    win._export[2].canceled.emit()
    with qtbot.waitSignal(worker.failed, timeout=60_000) as sig:
        pass
    assert "cancelled" in sig.args[0] and not (tmp_path / "masks").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".masks")]  # no staging left


def test_similar_wafers_window_ranks_like_the_command_and_opens_a_wafer(
    qtbot, demo_store, predictor, settings
):
    from app.similar_panel import SimilarPanel
    from waferseg_core.store.al_ops import similar

    store, user = demo_store
    win = make(qtbot, demo_store, predictor, settings)
    shown = win.browser.topLevelItem(3).text(0)
    assert win.select_wafer(shown)
    wafer_id = win.current_wafer_id()
    with qtbot.waitSignal(win.open_similar().searched, timeout=60_000):
        pass  # 20 by default
    panel = win.open_similar()
    assert isinstance(panel, SimilarPanel) and panel.table.rowCount() == 20
    with qtbot.waitSignal(panel.searched, timeout=60_000) as sig:
        panel.top.setValue(8)
        assert win.open_similar() is panel  # one window, kept
    assert sig.args == [8] and panel.table.rowCount() == 8
    assert f"{DEMO_LOT} / wafer {shown}" == panel.target.text()
    want = similar(store, user, predictor, wafer_id, 8)  # waferseg similar's ranking
    assert [r["wafer_id"] for r in panel.rows] == [r["wafer_id"] for r in want]
    assert wafer_id not in {r["wafer_id"] for r in panel.rows}
    sims = [float(panel.table.item(i, 1).text()) for i in range(8)]
    assert sims == sorted(sims, reverse=True)
    assert not panel.table.item(0, 0).icon().isNull()  # a thumbnail of the map
    assert not panel.target_map.pixmap().isNull()  # and of the wafer searched from
    # A search asked for while one runs waits for it, then runs: the window shows the last one.
    other = panel.rows[1]["wafer_id"]
    panel.search(wafer_id, "first")
    panel.search(other, "second")
    qtbot.waitUntil(
        lambda: panel.target.text() == "second" and panel.again.isEnabled(), timeout=60_000
    )
    want = similar(store, user, predictor, other, 8)
    assert [r["wafer_id"] for r in panel.rows] == [r["wafer_id"] for r in want]
    with qtbot.waitSignal(panel.open_wafer):
        panel.table.cellDoubleClicked.emit(0, 2)
    assert win.current_wafer_id() == panel.rows[0]["wafer_id"]  # the main window followed
    with qtbot.waitSignal(panel.searched, timeout=60_000) as sig:
        panel.other_lots.setChecked(True)  # the demo store holds one lot: nothing outside it
        panel.search(wafer_id, "other lots")
    assert sig.args == [0] and panel.table.rowCount() == 0
    panel.search(wafer_id, "closed while searching")
    panel.close()  # waits for the search's thread: none may outlive the window
    assert panel._running is None or panel._running[0].isFinished()


def test_similar_wafers_window_reports_an_unknown_wafer(
    qtbot, demo_store, predictor, settings, tmp_path
):
    from app.main_window import MainWindow
    from app.similar_panel import SimilarPanel
    from waferseg_core.store.service import Store

    empty = Store(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    win = MainWindow(empty, empty.login(), predictor, settings)
    qtbot.addWidget(win)
    assert "open a wafer first" in win.open_similar().status.text()  # nothing to rank against
    empty.close()
    store, user = demo_store
    panel = SimilarPanel(store, user, predictor)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.searched, timeout=60_000) as sig:
        panel.search(999_999, "nowhere")
    assert sig.args == [-1] and panel.status.text().startswith("error: ")
    assert "999999" in panel.status.text() and panel.table.rowCount() == 0
    assert panel.target_map.pixmap().isNull()
