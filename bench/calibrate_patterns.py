r"""Calibrate the pattern decision on real labelled wafers, without scoring a wafer it tuned on.

The offsets (``waferseg_core.decision``) are tuned on out-of-fold predictions only: fold k's model
predicts the lots it held out. Each fold model then gets the offsets tuned on the *other* folds'
wafers, so ``bench/cv_real.py`` on the fold models reports a cross-fitted score in which no
wafer helped choose the offsets it is decided with. The models named by ``--write`` (the
shipped one, trained on every fold) get the offsets tuned on all out-of-fold predictions.

    .venv/bin/python bench/calibrate_patterns.py resources/models/cv \
        --write resources/models/waferseg-default.onnx resources/models/waferseg-default.int8.onnx

Prints one JSON object (also to ``--out``): the offsets per fold and for ``--write``, and the
macro-F1 of each fold and of the pooled folds before (the head's plain choice) and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from waferseg_core.decision import OFFSETS_KEY, Scored, macro_f1, tune_offsets
from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import Predictor, model_files
from waferseg_core.ml.data import lot_fold
from waferseg_core.ml.export import set_metadata


def _write(path: Path, offsets: dict[str, float]) -> None:
    set_metadata(path, {OFFSETS_KEY: json.dumps(offsets, sort_keys=True)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cv", help="folder holding fold0.onnx, fold1.onnx ... (lot-disjoint folds)")
    ap.add_argument("--npz", default="../shared/data/wm811k/wm811k_dev.npz")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--write", nargs="*", default=[], help="models that get the pooled offsets")
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args()
    paths = [Path(args.cv) / f"fold{k}.onnx" for k in range(args.folds)]
    missing = [str(p) for p in [*paths, *map(Path, args.write)] if not p.is_file()]
    if missing:
        sys.exit(f"error: expected the fold models and --write models, found no {missing[0]}")
    maps = read_npz(args.npz)
    scored = []
    for k, path in enumerate(paths):
        held = [m for m in maps if lot_fold(m.lot, args.folds) == k]
        preds = Predictor(path).predict(held)
        truth = [str(m.extra["label"]) for m in held]
        scored.append(
            Scored.of(truth, [p.class_dies for p in preds], [p.wafer_probs for p in preds])
        )
    folds: dict[str, object] = {}
    report: dict[str, object] = {
        "command": " ".join(["bench/calibrate_patterns.py", *sys.argv[1:]]),
        "npz": args.npz,
        "folds": folds,
    }
    truth, plain, crossed = [], [], []
    for k, path in enumerate(paths):
        others = Scored.join([s for j, s in enumerate(scored) if j != k])
        offsets, fit = tune_offsets(others)
        own = scored[k]
        folds[f"fold{k}"] = {
            "wafers": len(own.truth),
            "offsets": offsets,
            "tuned_on_other_folds_macro_f1": round(fit, 4),
            "plain_macro_f1": round(own.macro_f1({}), 4),
            "calibrated_macro_f1": round(own.macro_f1(offsets), 4),
        }
        truth.append(own.truth)
        plain.append(own.decide({}))
        crossed.append(own.decide(offsets))
        for p in model_files(path).values():
            if p.is_file():
                _write(p, offsets)
    t = np.concatenate(truth)
    report["pooled"] = {
        "plain_macro_f1": round(macro_f1(t, np.concatenate(plain)), 4),
        "cross_fitted_macro_f1": round(macro_f1(t, np.concatenate(crossed)), 4),
    }
    offsets, fit = tune_offsets(Scored.join(scored))
    report["shipped"] = {
        "offsets": offsets,
        "out_of_fold_macro_f1": round(fit, 4),
        "models": args.write,
    }
    for p in args.write:
        _write(Path(p), offsets)
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
