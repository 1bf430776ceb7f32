"""Lot-disjoint cross-validation (bench/cv_real.py) from exported fold models."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import Predictor
from waferseg_core.ml.data import lot_fold
from waferseg_core.ml.export import export_onnx
from waferseg_core.ml.model import create_model

CV = Path(__file__).parents[2] / "bench" / "cv_real.py"


def test_cross_validation_scores_each_exported_fold_on_its_own_lots(tmp_path, wm811k_npz):
    for k in range(2):
        torch.manual_seed(k)
        export_onnx(create_model("resnet18-w0.25").eval(), tmp_path / f"fold{k}.onnx")
    proc = subprocess.run(
        [sys.executable, str(CV), str(tmp_path), "--npz", str(wm811k_npz)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    maps = read_npz(wm811k_npz)
    held = [[m for m in maps if lot_fold(m.lot, 2) == k] for k in range(2)]
    assert [report["folds"][f"fold{k}"]["wafers"] for k in range(2)] == [len(h) for h in held]
    assert sum(len(h) for h in held) == 1409
    # Fold 1's figure is its own model on its own lots, as the app would predict them.
    from waferseg_core.metrics import wafer_report

    guess = [p.pattern for p in Predictor(tmp_path / "fold1.onnx").predict(held[1])]
    truth = [m.extra["label"] for m in held[1]]
    want = wafer_report(truth, guess)["macro_f1"]
    assert report["folds"]["fold1"]["macro_f1"] == want
    assert 0.0 <= report["pooled"]["macro_f1"] <= 1.0
