"""The training worker: claims queued jobs from the store and runs them.

Run on the workstation or on any GPU machine that reaches the same store (``waferseg worker``).
A job's ``config`` holds the ``waferseg train`` options (``coco``, ``val``, ``synth``, ``lots``
(stored lots whose annotated wafers train, with their final masks),
``real_npz``, ``arch``, ``epochs``, ``batch_size``, ``lr``, ``seed``, ``epoch_size``, ``device``,
``max_minutes``, ``patience``, ``quantize``, ``max_side``, ``init`` (a checkpoint, or an
exported ``.onnx``, to fine-tune from), ``warmup_steps``,
``fixmatch`` with ``threshold``, ``fixmatch_start``, ``teacher_ema`` and ``unlabeled``
(files or folders; with ``lots``, their unannotated wafers join in)). While it trains, the
worker heartbeats at most every ``HEARTBEAT_S`` seconds and stops at the next batch when a
cancel was requested; every epoch's metrics go to the store; at the end the model is exported to
ONNX (parity-checked) and recorded as a model version with its metrics. A job that raises is
marked failed with its traceback.

Two other kinds of job: ``al_query`` (an active-learning query; BALD needs torch) and ``infer``
(batch inference: ``lots``, stored lot names, else every lot, predicted with ``model``, else the
store's active model, else the shipped one, into the store's prediction cache, so that the app
and ``waferseg predict --lot`` find them predicted). An inference job heartbeats and looks for a
cancel after every chunk of wafers, and records one row per lot (wafers, milliseconds) in place
of an epoch.
"""

from __future__ import annotations

import json
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waferseg_core.coarse import constants
from waferseg_core.inference import file_hash, model_files
from waferseg_core.ml import data as D  # noqa: N812
from waferseg_core.ml.export import export_run, run_metadata
from waferseg_core.ml.train import config_from_options, nan_to_none, score_best, train
from waferseg_core.store.service import Store

HEARTBEAT_S = 5.0


def run_job(store: Store, job: dict[str, Any], out_root: Path) -> str:
    """Run one claimed job to its end; returns its final status."""
    job_id = int(job["id"])
    cfg = dict(job["config"])
    owner = store.job_owner(job_id)
    last_beat = [0.0]
    cancel = [False]

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last_beat[0] >= HEARTBEAT_S:
            last_beat[0] = now
            cancel[0] = store.heartbeat(job_id)
        return cancel[0]

    try:
        tc = config_from_options(cfg)  # a bad option fails the job before any data loads
        stored: list[D.Sample] = []
        unlabeled: list[D.Sample] = []
        with constants(max_side=tc.max_side):  # the views every sample is built with
            if cfg.get("lots"):
                stored, unlabeled = D.store_samples(store, owner, list(cfg["lots"]))
            if cfg.get("unlabeled"):
                unlabeled += D.unlabeled_samples(list(cfg["unlabeled"]))
            train_set, val_set, _ = D.build_datasets(
                coco=cfg.get("coco"),
                val=cfg.get("val"),
                synth=int(cfg.get("synth", 0)),
                synth_seed=int(cfg.get("synth_seed", 1000)),
                mixed=float(cfg.get("mixed", 0.15)),
                workers=int(cfg.get("workers", 0)),
                real_npz=cfg.get("real_npz"),
                samples=stored,
            )
        out = out_root / f"job-{job_id}"
        for row in train(tc, train_set, val_set, out, cancelled=cancelled, unlabeled=unlabeled):
            store.add_epoch(job_id, int(row["epoch"]), nan_to_none(row))
        if cancel[0] or cancelled():
            store.finish_job(job_id, "cancelled")
            return "cancelled"
        model, (metrics,) = score_best(out, tc, val_set)
        metrics.update(
            export_run(
                model,
                out,
                train_set,
                val_set,
                quantize=bool(cfg.get("quantize")),
                metadata=run_metadata(tc.arch, tc.max_side, job=str(job_id)),
            )
        )
        # The int8 model when this run kept it (it agrees with fp32 and is the faster one).
        kept = bool(metrics.get("quantization", {}).get("int8_kept"))
        onnx_path = model_files(out / "model.onnx")["int8" if kept else "fp32"]
        (out / "summary.json").write_text(json.dumps(metrics, indent=1))
        store.register_model(
            owner,
            cfg.get("name", f"job {job_id}"),
            str(onnx_path.resolve()),
            file_hash(onnx_path),
            {k: v for k, v in metrics.items() if k != "confusion"},
            job_id=job_id,
        )
        store.finish_job(job_id, "succeeded")
        return "succeeded"
    except Exception:  # a crashed job is reported in the store, and the worker carries on
        store.finish_job(job_id, "failed", traceback.format_exc())
        return "failed"


def _reported(store: Store, job_id: int, body: Callable[[], str]) -> str:
    """``body()``'s final status; an exception marks the job failed with its traceback."""
    try:
        return body()
    except Exception:  # reported in the store like a crashed training job
        store.finish_job(job_id, "failed", traceback.format_exc())
        return "failed"


def run_al_job(store: Store, job: dict[str, Any]) -> str:
    """An active-learning query (BALD needs torch, so the app hands it to a worker)."""
    from waferseg_core.inference import Predictor
    from waferseg_core.store.al_ops import query

    job_id = int(job["id"])
    cfg = dict(job["config"])

    def body() -> str:
        owner = store.job_owner(job_id)
        picks = query(
            store,
            owner,
            Predictor(cfg.get("model") or None),
            str(cfg.get("strategy", "bald")),
            int(cfg.get("budget", 20)),
            lot=cfg.get("lot"),
            checkpoint=cfg.get("checkpoint") or None,
            seed=int(cfg.get("seed", 0)),
        )
        store.add_epoch(job_id, 0, {"queued": len(picks)})
        store.finish_job(job_id, "succeeded")
        return "succeeded"

    return _reported(store, job_id, body)


def run_infer_job(store: Store, job: dict[str, Any]) -> str:
    """Batch inference of stored lots into the store's prediction cache."""
    from waferseg_core.inference import Predictor
    from waferseg_core.store.predict import predict_stored, resolve_model

    job_id = int(job["id"])
    cfg = dict(job["config"])

    def body() -> str:
        owner = store.job_owner(job_id)
        pred = Predictor(resolve_model(store, owner, cfg.get("model") or None))
        lots = list(cfg.get("lots") or [x["name"] for x in store.lots(owner)])
        store.require_lots(owner, lots)
        for k, name in enumerate(lots):
            ids = [r["id"] for r in store.list_wafers(owner, lot=name)]
            t0, done = time.perf_counter(), 0
            for chunk in predict_stored(store, owner, pred, ids):
                done += len(chunk)
                if store.heartbeat(job_id):
                    store.finish_job(job_id, "cancelled")
                    return "cancelled"
            ms = round((time.perf_counter() - t0) * 1000, 1)
            row = {"lot": name, "wafers": done, "ms": ms, "model_hash": pred.hash}
            store.add_epoch(job_id, k, row)
        store.finish_job(job_id, "succeeded")
        return "succeeded"

    return _reported(store, job_id, body)


def work(
    store: Store,
    out_root: Path,
    *,
    once: bool = False,
    poll_s: float = 5.0,
    host: str | None = None,
    emit: Callable[[dict[str, Any]], None] = lambda _: None,
) -> int:
    """Claim and run jobs until stopped (or until the queue is empty with ``once``)."""
    host = host or socket.gethostname()
    done = 0
    while True:
        job = store.claim_job(host, kinds=tuple(RUNNERS))
        if job is None:
            if once:
                return done
            time.sleep(poll_s)
            continue
        emit({"event": "claimed", "job": job["id"], "host": host})
        status = RUNNERS[job["kind"]](store, job, out_root)
        emit({"event": "finished", "job": job["id"], "status": status})
        done += 1


# What the worker claims, and how it runs each kind.
RUNNERS: dict[str, Callable[[Store, dict[str, Any], Path], str]] = {
    "train": run_job,
    "al_query": lambda store, job, _: run_al_job(store, job),
    "infer": lambda store, job, _: run_infer_job(store, job),
}
