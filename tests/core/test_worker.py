"""The training worker against a real store: a job that succeeds, one that crashes, cancels."""

import os
import subprocess
import sys
import time

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


def test_worker_runs_a_job_and_records_everything(tmp_path, store_url):
    store = Store(store_url)
    admin = store.add_user(None, "eng", "admin", "pw")
    ok = store.enqueue_job(admin, TINY_JOB)
    bad = store.enqueue_job(admin, {**TINY_JOB, "arch": "resnet19"})
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
    failed = store.job(admin, bad)
    assert failed["status"] == "failed" and "Traceback" in failed["error_text"]
    assert "unknown architecture 'resnet19'" in failed["error_text"]
    store.close()


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
