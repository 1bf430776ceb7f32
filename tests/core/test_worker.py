"""The training worker against a real store: a job that succeeds, one that crashes, cancels."""

import json
import os
import subprocess
import sys
import time

import pytest

from waferseg_core.store.service import Store

TINY_JOB = {
    "synth": 40,
    "synth_seed": 3,
    "arch": "resnet18-w0.25",
    "epochs": 1,
    "batch_size": 8,
    "epoch_size": 16,
    "device": "cpu",
    "name": "tiny",
}


def _worker(url, out, *extra):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "waferseg_core.cli",
            "--store",
            url,
            "--user",
            "eng",
            "worker",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "WAFERSEG_PASSWORD": "pw"},
    )


@pytest.mark.slow
def test_worker_runs_a_job_and_records_everything(tmp_path, store_url):
    store = Store(store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    ok = store.enqueue_job(admin, {**TINY_JOB, "quantize": True})
    bad = store.enqueue_job(admin, {**TINY_JOB, "arch": "resnet19"})
    bad_ema = store.enqueue_job(admin, {**TINY_JOB, "teacher_ema": 1.0})
    bad_side = store.enqueue_job(admin, {**TINY_JOB, "max_side": 10})
    proc = _worker(store_url, tmp_path / "jobs", "--once")
    assert proc.returncode == 0, proc.stderr
    assert '"status": "succeeded"' in proc.stdout and '"status": "failed"' in proc.stdout
    job = store.job(admin, ok)
    assert job["status"] == "succeeded" and len(job["epochs"]) == 1 and "loss" in job["epochs"][0]
    (model,) = store.models(admin)
    assert (
        model["job_id"] == ok
        and os.path.exists(model["file_path"])
        and "parity" in model["metrics"]
    )
    # The int8 model is registered when it was kept (it agrees with fp32), else the fp32 one.
    kept = model["metrics"]["quantization"]["int8_kept"]
    assert model["file_path"].endswith("model.int8.onnx" if kept else "model.onnx")
    from waferseg_core.inference import Predictor

    assert Predictor(model["file_path"]).max_side == 96  # the views it trained on, recorded
    failed = store.job(admin, bad)
    assert failed["status"] == "failed" and "Traceback" in failed["error_text"]
    assert "unknown architecture 'resnet19'" in failed["error_text"]
    refused = store.job(admin, bad_ema)  # refused by its options, before any data loads
    assert refused["status"] == "failed" and refused["epochs"] == []
    assert "teacher_ema (--teacher-ema) must be within [0, 1), found 1.0" in refused["error_text"]
    refused = store.job(admin, bad_side)
    assert refused["status"] == "failed" and refused["epochs"] == []
    assert "max_side (--max-side) must be 32 dies or more, found 10" in refused["error_text"]
    store.close()


@pytest.mark.slow
def test_cancel_stops_a_running_job(tmp_path, store_url):
    store = Store(store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    long_job = store.enqueue_job(admin, {**TINY_JOB, "epochs": 500, "patience": 1000})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waferseg_core.cli",
            "--store",
            store_url,
            "--user",
            "eng",
            "worker",
            "--once",
            "--out",
            str(tmp_path / "jobs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WAFERSEG_PASSWORD": "pw"},
    )
    deadline = time.monotonic() + 300
    while not store.job(admin, long_job)["epochs"]:
        assert time.monotonic() < deadline and proc.poll() is None, (
            proc.stderr.read() if proc.poll() else "slow"
        )
        time.sleep(0.5)
    store.request_cancel(admin, long_job)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    job = store.job(admin, long_job)
    assert job["status"] == "cancelled" and 1 <= len(job["epochs"]) < 500
    assert store.models(admin) == []
    store.close()


def test_a_viewer_may_not_run_a_worker(tmp_path, pg_store_url):
    store = Store(pg_store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    store.add_user(admin, "vic", "viewer", "pw")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "waferseg_core.cli",
            "--store",
            pg_store_url,
            "--user",
            "vic",
            "worker",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "WAFERSEG_PASSWORD": "pw"},
    )
    assert proc.returncode == 2 and "may not run training jobs" in proc.stderr
    store.close()


@pytest.mark.slow
def test_worker_trains_on_the_annotated_wafers_of_stored_lots(tmp_path):
    from waferseg_core.ml.data import store_samples
    from waferseg_core.ml.worker import work
    from waferseg_core.synth import generate_wafer

    store = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    admin = store.login()
    made = [generate_wafer(5, i) for i in range(24)]
    ids = store.import_lot(admin, "A", [sw.wafer for sw in made])
    for wid, sw in zip(ids[:20], made[:20], strict=True):  # 4 wafers stay unannotated
        store.replace_annotations(admin, wid, sw.mask, source="manual")
        store.set_status(admin, wid, "annotated")  # also the clean ones, which have no region
    labelled, unlabelled = store_samples(store, admin, ["A"])
    assert len(labelled) == 20 and len(unlabelled) == 4
    assert all(s.mask is not None and s.mask.shape == s.grid.shape for s in labelled)
    cfg = {k: v for k, v in TINY_JOB.items() if k not in ("synth", "synth_seed")}
    job = store.enqueue_job(admin, {**cfg, "lots": ["A"], "name": "from lot A"})
    missing = store.enqueue_job(admin, {**cfg, "lots": ["nope"]})
    assert work(store, tmp_path / "jobs", once=True) == 2
    assert store.job(admin, job)["status"] == "succeeded"
    assert "holds no wafers" in store.job(admin, missing)["error_text"]
    listed = {j["id"]: j for j in store.jobs(admin)}
    assert listed[job]["model_id"] is not None and listed[job]["epochs"] == 1
    assert listed[missing]["model_id"] is None and listed[missing]["status"] == "failed"
    store.close()


def test_batch_inference_jobs_fill_the_prediction_cache(tmp_path, store_url, capsys, monkeypatch):
    from waferseg_core.cli import main
    from waferseg_core.inference import Predictor
    from waferseg_core.ml.worker import work
    from waferseg_core.synth import generate_wafer

    store = Store(store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    lots = {"L": [generate_wafer(6, i).wafer for i in range(5)], "M": [generate_wafer(6, 9).wafer]}
    for name, wafers in lots.items():
        store.import_lot(admin, name, wafers)
    shipped = Predictor().hash
    cached = lambda w: store.cached_prediction(admin, w.content_hash, shipped)  # noqa: E731
    assert not any(cached(w) for w in lots["L"])
    monkeypatch.setenv("WAFERSEG_PASSWORD", "pw")
    argv = ["--store", store_url, "--user", "eng", "predict"]
    assert main([*argv, "--lot", "L", "--queue"]) == 0  # the CLI queues, the worker predicts
    queued = json.loads(capsys.readouterr().out)
    assert queued["kind"] == "infer" and queued["lots"] == ["L"] and queued["model"] is None
    assert main([*argv, "--all-lots", "--queue"]) == 0  # one job, every lot stored when it runs
    every = json.loads(capsys.readouterr().out)["job"]
    bad = store.enqueue_job(admin, {"lots": ["L", "NOPE"]}, kind="infer")
    assert work(store, tmp_path / "jobs", once=True) == 3
    job = store.job(admin, queued["job"])
    assert job["status"] == "succeeded" and [e["lot"] for e in job["epochs"]] == ["L"]
    assert job["epochs"][0]["wafers"] == 5 and job["epochs"][0]["model_hash"] == shipped
    assert all(cached(w) for w in lots["L"] + lots["M"])
    assert [e["lot"] for e in store.job(admin, every)["epochs"]] == ["L", "M"]
    failed = store.job(admin, bad)  # every lot is checked before any is predicted
    assert failed["status"] == "failed" and failed["epochs"] == []
    assert "expected a stored lot, found no lot 'NOPE'" in failed["error_text"]
    for extra, says in (
        (["--lot", "NOPE", "--queue"], "found no lot 'NOPE'"),
        (["--lot", "L", "--queue", "--masks-out", str(tmp_path)], "--masks-out with --queue"),
        (["--lot", "L", "--queue", "--views", "4"], "--views with --lot: expected 1"),
        (["--all-lots"], "--all-lots goes with --queue alone"),
        (["--all-lots", "--queue", "--lot", "L"], "--all-lots goes with --queue alone"),
    ):
        assert main([*argv, *extra]) == 2 and says in capsys.readouterr().err
    store.close()


def test_a_batch_inference_job_stops_at_a_cancel(tmp_path, store_url):
    from waferseg_core.ml.worker import run_infer_job
    from waferseg_core.synth import generate_wafer

    store = Store(store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    wafers = [generate_wafer(7, i).wafer for i in range(40)]  # more than a chunk of 32
    for i, w in enumerate(wafers):
        w.wafer_id = f"W{i}"
    store.import_lot(admin, "L", wafers)
    job_id = store.enqueue_job(admin, {"lots": ["L"]}, kind="infer")
    job = store.claim_job("here", kinds=("infer",))  # running now, so a cancel is a request
    assert job is not None and job["id"] == job_id
    store.request_cancel(admin, job_id)
    assert run_infer_job(store, job) == "cancelled"
    done = store.job(admin, job_id)
    assert done["status"] == "cancelled" and done["epochs"] == []  # stopped inside the lot
    store.close()
