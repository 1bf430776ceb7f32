"""The training monitor with a real worker process: queue, run, curves, compare, promote."""

import pytest

from app.training_monitor import NewJobDialog, TrainingMonitor
from waferseg_core.errors import InvalidInputError
from waferseg_core.store.service import Store

TINY = {
    "synth": 40,
    "arch": "resnet18-w0.25",
    "epochs": 2,
    "batch_size": 8,
    "epoch_size": 16,
    "device": "cpu",
    "lr": 0.002,
}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFERSEG_HOME", str(tmp_path / "home"))  # the worker's job folder
    s = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    yield s
    s.close()


def test_new_job_dialog_config(qtbot):
    dlg = NewJobDialog(["A", "B"])
    qtbot.addWidget(dlg)
    dlg.lots.item(1).setCheckState(dlg.lots.item(1).checkState().Checked)
    dlg.arch.setCurrentText("resnet34")
    dlg.epochs.setValue(7)
    dlg.name.setText("night run")
    cfg = dlg.config()
    assert cfg["lots"] == ["B"] and cfg["arch"] == "resnet34" and cfg["epochs"] == 7
    assert cfg["name"] == "night run" and cfg["synth"] == 2000 and dlg.run_here.isChecked()


@pytest.mark.slow
def test_local_worker_runs_the_job_and_the_model_is_promoted(qtbot, store):
    user = store.login()
    mon = TrainingMonitor(store, user, refresh_ms=200)
    qtbot.addWidget(mon)
    with pytest.raises(InvalidInputError, match="needs data"):
        mon.submit({"arch": "resnet18-w0.25"}, start_worker=False)
    job_id = mon.submit(TINY, start_worker=True)
    assert mon.selected_ids() == [job_id] and "worker started" in mon.status.text()
    qtbot.waitUntil(
        lambda: store.job(user, job_id)["status"] not in ("queued", "running"), timeout=240_000
    )
    (proc,) = mon.processes
    proc.waitForFinished(30_000)
    out = bytes(proc.readAllStandardOutput()).decode() + bytes(proc.readAllStandardError()).decode()
    assert store.job(user, job_id)["status"] == "succeeded", out
    mon.refresh()
    assert mon.table.item(0, 1).text() == "succeeded" and mon.table.item(0, 3).text() == "2/2"
    assert len(mon.loss_plot.listDataItems()) == 1
    assert len(mon.loss_plot.listDataItems()[0].getData()[0]) == 2
    assert mon.promote_button.isEnabled() and not mon.cancel_button.isEnabled()
    mon.promote_selected()
    (model,) = store.models(user)
    assert model["active"] and model["job_id"] == job_id
    assert "is now active" in mon.status.text()


def test_queue_cancel_and_compare(qtbot, store):
    user = store.login()
    mon = TrainingMonitor(store, user, refresh_ms=60_000)
    qtbot.addWidget(mon)
    a = mon.submit(TINY, start_worker=False)
    b = mon.submit({**TINY, "lr": 0.01, "arch": "resnet34"}, start_worker=False)
    assert not mon.processes
    mon.table.selectAll()
    assert sorted(mon.selected_ids()) == [a, b]
    html = mon.compare.toHtml()
    assert f"job {a}" in html and f"job {b}" in html and "resnet34" in html and "0.01" in html
    mon.select_job(a)
    mon.table.clearSelection()
    mon.select_job(a)
    assert mon.cancel_button.isEnabled()
    mon.cancel_selected()
    assert store.job(user, a)["status"] == "cancelled"
    assert store.job(user, b)["status"] == "queued"


def test_a_batch_inference_job_shows_its_lots(qtbot, store, tmp_path):
    from waferseg_core.ml.worker import work
    from waferseg_core.synth import generate_wafer

    user = store.login()
    store.import_lot(user, "L", [generate_wafer(6, i).wafer for i in range(3)])
    job = store.enqueue_job(user, {"lots": ["L"]}, kind="infer")
    mon = TrainingMonitor(store, user, refresh_ms=60_000)
    qtbot.addWidget(mon)
    row = [mon.table.item(0, c).text() for c in range(mon.table.columnCount())]
    assert row[:2] == [str(job), "queued"] and row[3] == "0/1" and row[6] == "predict: L"
    assert work(store, tmp_path / "jobs", once=True) == 1
    mon.refresh()
    mon.select_job(job)  # its rows are lots, not epochs: the curves stay empty, nothing breaks
    assert mon.table.item(0, 1).text() == "succeeded" and mon.table.item(0, 3).text() == "1/1"
    mon.cancel_selected()  # it ended before the click: said, not raised
    assert "expected a queued or running job, found it succeeded" in mon.status.text()
