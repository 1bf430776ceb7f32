"""Lot-disjoint cross-validation on the real WM-811K dev wafers.

Each fold's model (trained with that fold's lots held out) is scored on exactly those lots; the
pooled predictions give the macro-F1 reported in the model card. A fold's model is
``RUNS/fold<k>.onnx`` when that file exists (exported, as ``scripts/finish_default_model.sh``
keeps them in ``resources/models/cv/``; run by ONNX Runtime as the app would), else the torch
checkpoint ``RUNS/fold<k>/best_model.pt`` of a training run.

    .venv/bin/python bench/cv_real.py out/default [--npz ../shared/data/wm811k/wm811k_dev.npz] [--folds 2]
    .venv/bin/python bench/cv_real.py resources/models/cv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import Predictor, decide_pattern
from waferseg_core.metrics import wafer_report
from waferseg_core.ml.data import labelled_samples, lot_fold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "runs", help="folder holding fold0.onnx ... or fold0/, fold1/ ... with best_model.pt"
    )
    ap.add_argument("--npz", default="../shared/data/wm811k/wm811k_dev.npz")
    ap.add_argument("--folds", type=int, default=2)
    args = ap.parse_args()
    maps = read_npz(args.npz)
    samples = labelled_samples(
        [m.grid for m in maps], [m.extra["label"] for m in maps], [m.lot for m in maps]
    )
    truth, guess, per_fold = [], [], {}
    for k in range(args.folds):
        held_maps = [m for m in maps if lot_fold(m.lot, args.folds) == k]
        held = [s for s in samples if lot_fold(s.lot, args.folds) == k]
        t = [WAFER_LABELS[s.primary] if s.labels.sum() else "none" for s in held]
        exported = Path(args.runs) / f"fold{k}.onnx"
        if exported.is_file():
            g = [p.pattern for p in Predictor(exported).predict(held_maps)]
        else:
            import torch

            from waferseg_core.ml.train import load_model, predict_samples

            model, _ = load_model(Path(args.runs) / f"fold{k}" / "best_model.pt")
            preds = predict_samples(model, held, torch.device("cpu"))
            g = [decide_pattern(m, s.grid, p)[0] for s, (m, p) in zip(held, preds, strict=True)]
        per_fold[f"fold{k}"] = {
            "wafers": len(held),
            **{
                k2: v
                for k2, v in wafer_report(t, g).items()
                if k2 in ("macro_f1", "wafer_accuracy")
            },
        }
        truth += t
        guess += g
    pooled = wafer_report(truth, guess)
    print(
        json.dumps(
            {"folds": per_fold, "pooled": {k: v for k, v in pooled.items() if k != "labels"}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
