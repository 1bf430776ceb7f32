"""``waferseg train``, ``evaluate``, ``predict`` and ``bench`` (the model's commands).

``train`` imports torch (the ``train`` extra); the others run on ONNX Runtime alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from waferseg_core.classes import CLASSES
from waferseg_core.errors import InvalidInputError
from waferseg_core.patterns import class_die_counts


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def add_commands(sub: Any) -> None:
    """Register the model commands on the main parser's subparsers."""
    p = sub.add_parser("train", help="train a model (needs the 'train' extra: torch)")
    p.add_argument("--coco", help="training set (COCO with die-grid PNGs)")
    p.add_argument("--out", required=True)
    p.add_argument("--val", help="validation set (COCO); default: 10%% of the training set")
    p.add_argument("--arch", default="resnet18-w0.5")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--epoch-size", type=int, default=0, help="wafers drawn per epoch (0: the set's size)"
    )
    p.add_argument(
        "--synth", type=int, default=0, help="add N synthetic wafers generated on the fly"
    )
    p.add_argument("--synth-seed", type=int, default=1000)
    p.add_argument("--mixed", type=float, default=0.15)
    p.add_argument("--real-npz", help="real wafers with wafer-level labels only (WM-811K npz)")
    p.add_argument("--real-folds", type=int, default=0, help="lot-disjoint folds of --real-npz")
    p.add_argument(
        "--real-holdout", type=int, default=-1, help="fold kept out of training and scored"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1) if (os.cpu_count() or 1) > 2 else 0,
        help="processes generating synthetic wafers and building batches",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=0,
        help="wafers more than this many dies across are seen in blocks (0: the default, 96); "
        "the exported model carries it",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="wall-time budget: the cosine schedule anneals over it and training stops at it",
    )
    p.add_argument(
        "--unlabeled", nargs="+", metavar="DIR", help="wafer files or folders for FixMatch"
    )
    p.add_argument("--threshold", type=float, default=0.95, help="FixMatch pseudo-label confidence")
    p.add_argument(
        "--teacher-ema",
        type=float,
        default=0.0,
        help="FixMatch: pseudo-labels from a moving average of the weights with this decay "
        "(e.g. 0.99; 0: from the model being trained)",
    )
    p.add_argument(
        "--fixmatch-start",
        type=int,
        default=-1,
        help="FixMatch: supervised-only epochs first (default: a third of --epochs)",
    )
    p.add_argument(
        "--init",
        help="start from these weights (fine-tune; same --arch): a checkpoint .pt or a "
        "model .onnx such as the shipped one",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        help="steps over which the learning rate rises from 0 (default: 100 with --init, else 0)",
    )
    p.add_argument("--no-quantize", action="store_true")
    p.add_argument("--no-export", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="score an ONNX model on a COCO set (and/or real labelled wafers)"
    )
    p.add_argument("--model", required=True)
    p.add_argument("--coco")
    p.add_argument("--npz", help="WM-811K npz: wafer-level scores on its labels")
    p.add_argument(
        "--void-outline",
        type=int,
        default=0,
        metavar="N",
        help="also score without the dies within N of a class outline (a VOC-style void band)",
    )
    _add_views(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="segment wafers in files or a stored lot; JSON per wafer")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--lot", help="a stored lot instead of files (predictions are cached)")
    p.add_argument("--model")
    p.add_argument("--masks-out", help="write <stem>[_<wafer>].png class-id masks here")
    p.add_argument(
        "--queue",
        action="store_true",
        help="with --lot: queue the lot for `waferseg worker` (here or on a machine sharing the "
        "store) instead of predicting it now; prints the job id",
    )
    p.add_argument(
        "--all-lots",
        action="store_true",
        help="with --queue: one job for every stored lot (those stored when it runs)",
    )
    _add_views(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "worker", help="claim queued jobs (training, active learning, batch inference) and run them"
    )
    p.add_argument("--once", action="store_true", help="stop when the queue is empty")
    p.add_argument(
        "--poll", type=float, default=5.0, help="seconds between looks at an empty queue"
    )
    p.add_argument("--out", help="folder for job outputs (default: the user data folder's jobs/)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("bench", help="inference latency and throughput, JSON")
    p.add_argument("--model")
    p.add_argument("--repeat", type=int, default=200)
    p.set_defaults(func=cmd_bench)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, export to ONNX (parity checked), quantize when it agrees, and report."""
    if importlib.util.find_spec("torch") is None:
        raise InvalidInputError("waferseg train needs torch: install the 'train' extra")
    from waferseg_core import coarse
    from waferseg_core.ml.train import config_from_options

    if not args.coco and not args.synth and not args.real_npz:
        raise InvalidInputError(
            "expected training data: --coco FILE, --synth N and/or --real-npz FILE"
        )
    out = Path(args.out)
    cfg = config_from_options({**vars(args), "fixmatch": bool(args.unlabeled)})
    with coarse.constants(max_side=cfg.max_side):  # the views every sample is built with
        return _train_run(args, cfg, out)


def _train_run(args: argparse.Namespace, cfg: Any, out: Path) -> int:
    """``cmd_train`` once its options are checked: data, training, scores, export."""
    from waferseg_core.ml.data import build_datasets, unlabeled_samples
    from waferseg_core.ml.train import nan_to_none, score_best, train

    unlabeled = unlabeled_samples(args.unlabeled) if args.unlabeled else []
    train_set, val_set, real_holdout = build_datasets(
        coco=args.coco,
        val=args.val,
        synth=args.synth,
        synth_seed=args.synth_seed,
        mixed=args.mixed,
        workers=args.workers,
        real_npz=args.real_npz,
        real_folds=args.real_folds,
        real_holdout=args.real_holdout,
    )
    t0 = time.perf_counter()
    for row in train(cfg, train_set, val_set, out, unlabeled=unlabeled):
        _emit({"event": "epoch", **nan_to_none(row)})
    summary: dict[str, Any] = {
        "event": "done",
        "out": str(out),
        "train_wafers": len(train_set),
        "unlabeled_wafers": len(unlabeled),
        "val_wafers": len(val_set),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    model, (val_report, holdout_report) = score_best(out, cfg, val_set, real_holdout)
    if val_set:
        summary["val"] = val_report
    if real_holdout:
        summary["real_holdout"] = holdout_report
    if not args.no_export:
        from waferseg_core.ml.export import export_run, run_metadata

        summary.update(
            export_run(
                model,
                out,
                train_set,
                val_set,
                metadata=run_metadata(cfg.arch, cfg.max_side),
                quantize=not args.no_quantize,
            )
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _emit(summary)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run queued jobs; one JSON line per claimed and finished job."""
    try:
        from waferseg_core.ml.worker import work
    except ImportError as exc:
        raise InvalidInputError(f"waferseg worker needs the 'train' extra: {exc}") from None
    from waferseg_core.cli_store import login, open_store
    from waferseg_core.demo import data_dir
    from waferseg_core.errors import PermissionDeniedError

    store = open_store(args)
    user = login(store, args)  # on a shared store: --user and WAFERSEG_PASSWORD
    if not user.can("train"):
        raise PermissionDeniedError(f"{user.name} ({user.role}) may not run training jobs")
    out = Path(args.out) if args.out else data_dir() / "jobs"
    done = work(store, out, once=args.once, poll_s=args.poll, emit=_emit)
    _emit({"event": "idle", "jobs_run": done})
    return 0


def _add_views(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--views",
        type=int,
        default=1,
        help="average over 1, 2, 4 or 8 flipped and turned views of each wafer "
        "(that many times the time; waferseg_core/views.py)",
    )
    p.add_argument(
        "--phases",
        type=int,
        default=1,
        help="on wafers seen in blocks (over 96 dies across), average over 1, 2 or 4 block "
        "grids moved by half a block: finer outlines for that many times their time "
        "(waferseg_core/coarse.py)",
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Segmentation metrics on a COCO set, wafer metrics on its (and the npz's) labels."""
    from waferseg_core.coco import load, mask_from_annotations
    from waferseg_core.inference import Predictor
    from waferseg_core.metrics import Confusion, outline_band, segmentation_report, wafer_report
    from waferseg_core.patterns import pattern_from_mask

    if not args.coco and not args.npz:
        raise InvalidInputError("expected --coco FILE and/or --npz FILE")
    if args.void_outline < 0:
        raise InvalidInputError(f"--void-outline must be 0 or more dies, found {args.void_outline}")
    pred = Predictor(args.model, views=args.views, phases=args.phases)
    report: dict[str, Any] = {"model": str(args.model), "model_hash": pred.hash}
    if args.views > 1:
        report["views"] = args.views
    if args.phases > 1:
        report["phases"] = args.phases
    if args.coco:
        items = load(args.coco)
        results = pred.predict([cw.wafer for cw in items])
        conf, inner = Confusion(), Confusion()  # inner: outside the void band
        truth, guess = [], []
        for cw, r in zip(items, results, strict=True):
            mask = mask_from_annotations(cw.annotations, cw.wafer)
            on = cw.wafer.grid > 0
            conf.add(mask, r.mask, on)
            if args.void_outline:
                inner.add(mask, r.mask, on & ~outline_band(mask, on, args.void_outline))
            truth.append(pattern_from_mask(mask, cw.wafer.grid))
            guess.append(r.pattern)
        report.update(segmentation_report(conf))
        # Die counts, rows the true class and columns the predicted one (class id order);
        # "confusion" is the wafer-level one of wafer_report.
        report["die_confusion"] = conf.matrix.tolist()
        if args.void_outline:
            away = segmentation_report(inner)
            report["void_outline"] = {
                "dies": args.void_outline,
                "scored_share": round(int(inner.matrix.sum()) / max(int(conf.matrix.sum()), 1), 4),
                "mean_iou": away["mean_iou"],
                "per_class_iou": away["per_class_iou"],
            }
        report.update(wafer_report(truth, guess))
        report["wafers"] = len(items)
    if args.npz:
        from waferseg_core.formats.wm811k import read_npz

        maps = read_npz(args.npz)
        results = pred.predict(maps)
        real = wafer_report([m.extra["label"] for m in maps], [r.pattern for r in results])
        report["real"] = {"wafers": len(maps), **real}
    _emit(report)
    return 0


def _verdict(p: Any) -> dict[str, Any]:
    """The wafer's call of a prediction (fresh or stored), as ``predict`` prints it."""
    return {
        "pattern": p.pattern,
        "patterns": p.patterns,
        "pattern_probability": p.pattern_probability,
        "confidence": p.confidence,
    }


def cmd_predict(args: argparse.Namespace) -> int:
    """One JSON line per wafer; masks as class-id PNGs when asked."""
    from waferseg_core import coarse
    from waferseg_core.formats import read
    from waferseg_core.formats.pngio import encode_gray
    from waferseg_core.inference import Predictor

    if args.all_lots:
        if args.files or args.lot or not args.queue:
            raise InvalidInputError("--all-lots goes with --queue alone (no FILE, no --lot)")
        return _queue_lot(args)
    if bool(args.files) == bool(args.lot):
        raise InvalidInputError("predict needs FILE... or --lot NAME (one of the two)")
    for name in ("views", "phases"):
        # The store caches one prediction per wafer and model, made from one view and phase.
        if args.lot and getattr(args, name) != 1:
            raise InvalidInputError(
                f"--{name} with --lot: expected 1 (stored predictions), found {getattr(args, name)}"
            )
    if args.queue:
        return _queue_lot(args)
    out_dir = Path(args.masks_out) if args.masks_out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    if args.lot:
        rows, max_side = _predict_lot(args)
    else:
        pred = Predictor(args.model, views=args.views, phases=args.phases)
        max_side = pred.max_side
        maps = [(Path(f), m) for f in args.files for m in read(f)]
        per_file: dict[Path, int] = {}
        for f, _ in maps:
            per_file[f] = per_file.get(f, 0) + 1
        results = pred.predict([m for _, m in maps])
        rows = [
            (
                str(f),
                f.stem if per_file[f] == 1 else f"{f.stem}_{m.wafer_id}",
                m,
                r.mask,
                _verdict(r),
                r.ms,
            )
            for (f, m), r in zip(maps, results, strict=True)
        ]
    for file, name, m, mask, verdict, ms in rows:
        counts = class_die_counts(mask, m.grid)
        row = {
            "file": file,
            "lot": m.lot,
            "wafer": m.wafer_id,
            "pattern": verdict["pattern"],
            "patterns": verdict["patterns"],
            "pattern_probability": round(verdict["pattern_probability"], 4),
            "confidence": round(verdict["confidence"], 4),
            "class_dies": {CLASSES[i].name: c for i, c in enumerate(counts) if i and c},
            "scale": coarse.factor(m.grid.shape, max_side),  # k: the model saw k x k blocks
            "ms": round(ms, 3),
        }
        if out_dir:
            path = out_dir / f"{name}.png"
            meta = {
                "waferseg:kind": "class-mask",
                "waferseg:lot": m.lot,
                "waferseg:wafer": m.wafer_id,
            }
            path.write_bytes(encode_gray(mask, meta))
            row["mask"] = str(path)
        _emit(row)
    return 0


def _queue_lot(args: argparse.Namespace) -> int:
    """``predict --lot NAME --queue`` (or ``--all-lots --queue``): a batch-inference job."""
    from waferseg_core.cli_store import login, open_store

    if not args.lot and not args.all_lots:
        raise InvalidInputError(
            "--queue needs --lot NAME (a stored lot) or --all-lots, found files"
        )
    if args.masks_out:
        raise InvalidInputError(
            "--masks-out with --queue: expected none (the worker predicts later)"
        )
    store = open_store(args)
    user = login(store, args)
    if args.lot:
        store.require_lots(user, [args.lot])
    from waferseg_core.inference import model_file

    # A full path: the worker may run in another folder or on another machine.
    model = str(model_file(args.model).resolve()) if args.model else None
    lots = [args.lot] if args.lot else None  # None: every lot stored when the job runs
    job = store.enqueue_job(user, {"lots": lots, "model": model}, kind="infer")
    _emit({"job": job, "kind": "infer", "lots": lots, "model": model})
    return 0


def _predict_lot(
    args: argparse.Namespace,
) -> tuple[list[tuple[str, str, Any, Any, dict[str, Any], float]], int | None]:
    """(file, mask name, map, mask, verdict, ms) of a stored lot's wafers, through the cache.

    Also the model's max side (the blocks it saw large wafers in).
    """
    from waferseg_core.cli_store import login, open_store
    from waferseg_core.inference import Predictor
    from waferseg_core.store.predict import predict_stored, resolve_model

    store = open_store(args)
    user = login(store, args)
    ids = [r["id"] for r in store.list_wafers(user, lot=args.lot)]
    if not ids:
        raise InvalidInputError(f"lot {args.lot!r} holds no wafers (or does not exist)")
    pred = Predictor(resolve_model(store, user, args.model))
    out: list[tuple[str, str, Any, Any, dict[str, Any], float]] = []
    chunks = predict_stored(store, user, pred, ids)
    while True:
        t = time.perf_counter()
        chunk = next(chunks, None)
        if chunk is None:
            return out, pred.max_side
        ms = (time.perf_counter() - t) * 1000 / len(chunk)  # cached wafers cost a read only
        for p in chunk:
            verdict = _verdict(p)
            name = f"{args.lot}_{p.wafer.wafer_id}_{p.wafer_id}"
            out.append((p.wafer.source_file, name, p.wafer, p.mask, verdict, ms))


def cmd_bench(args: argparse.Namespace) -> int:
    """p50 latency per 64x64 wafer and batched throughput.

    ORT fp32 and int8 (the model and its ``.int8.onnx`` or ``.onnx`` sibling, those present)
    against torch eager on the same architecture, measured in the same run; end to end with
    the model given (default: the shipped one, int8); one large wafer at the coarse scale
    against the full scale.
    """
    from waferseg_core.inference import DEFAULT_MODEL, Predictor, model_files
    from waferseg_core.modelio import encode
    from waferseg_core.synth import generate_wafer

    path = Path(args.model) if args.model else DEFAULT_MODEL
    wafers: list[Any] = []
    i = 0
    while len(wafers) < 64:  # wafers of up to 64 x 64 dies
        w = generate_wafer(77, i).wafer
        i += 1
        if max(w.shape) <= 64:
            wafers.append(w)
    x1 = encode(wafers[0].grid, (64, 64))[None]
    batch = np.stack([encode(w.grid, (64, 64)) for w in wafers])

    def p50(fn: Any) -> float:
        for _ in range(10):
            fn()
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    report: dict[str, Any] = {"model": str(path), "threads": os.cpu_count()}
    pred = Predictor(path)
    for kind, file in model_files(path).items():
        if not file.is_file():
            continue
        ort = pred if file == path else Predictor(file)
        report[f"ort_{kind}_p50_ms"] = round(p50(lambda o=ort: o.raw(x1)), 3)
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 2.0:
            ort.raw(batch)
            n += len(batch)
        report[f"ort_{kind}_batched_wafers_per_s"] = round(n / (time.perf_counter() - t), 1)
    try:
        import onnx
        import torch

        from waferseg_core.ml.model import create_model

        meta = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        model = create_model(meta.get("arch", "resnet18-w0.5")).eval()
        xt = torch.from_numpy(x1)
        with torch.no_grad():
            report["torch_eager_p50_ms"] = round(p50(lambda: model(xt)), 3)
        for kind in ("fp32", "int8"):
            if f"ort_{kind}_p50_ms" in report:
                report[f"speedup_ort_{kind}_vs_torch"] = round(
                    report["torch_eager_p50_ms"] / report[f"ort_{kind}_p50_ms"], 2
                )
    except ImportError:
        report["torch_eager_p50_ms"] = None
    report["end_to_end_predict_ms_per_wafer"] = round(_uncached_ms(pred, wafers), 3)
    four = Predictor(path, views=4)  # --views 4, on the same wafers
    report["end_to_end_predict_ms_per_wafer_views4"] = round(_uncached_ms(four, wafers), 3)
    report.update(_large_wafer_ms(pred))
    _emit(report)
    return 0


def _large_wafer_ms(pred: Any) -> dict[str, Any]:
    """End-to-end predict of one wafer 200+ dies across: coarse scale against full scale."""
    from waferseg_core.inference import Predictor
    from waferseg_core.synth import first_sized

    big = first_sized(77, over=200, limit=500).wafer
    coarse_ms = statistics.median(_uncached_ms(pred, [big]) for _ in range(3))
    four = Predictor(pred.path, phases=4)  # --phases 4
    phases_ms = statistics.median(_uncached_ms(four, [big]) for _ in range(3))
    full = Predictor(pred.path, max_side=10**9)  # the model on every die, no blocks
    full_ms = statistics.median(_uncached_ms(full, [big]) for _ in range(3))
    return {
        "large_wafer_dies": f"{big.rows}x{big.cols}",
        "large_wafer_coarse_ms": round(coarse_ms, 2),
        "large_wafer_coarse_phases4_ms": round(phases_ms, 2),
        "large_wafer_full_scale_ms": round(full_ms, 2),
        "large_wafer_speedup": round(full_ms / coarse_ms, 2),
    }


def _uncached_ms(pred: Any, wafers: list[Any]) -> float:
    """Per-wafer time of ``Predictor.predict`` on a batch it has not seen (cache cleared)."""
    pred._cache.clear()
    t = time.perf_counter()
    pred.predict(wafers)
    return (time.perf_counter() - t) * 1000 / len(wafers)
