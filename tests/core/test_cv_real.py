"""Lot-disjoint cross-validation (bench/cv_real.py) from exported fold models."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from waferseg_core.formats.wm811k import read_npz, write_npz
from waferseg_core.inference import Predictor
from waferseg_core.ml.data import lot_fold
from waferseg_core.ml.export import export_onnx
from waferseg_core.ml.model import create_model

pytestmark = pytest.mark.slow  # three real-wafer runs over exported models

CV = Path(__file__).parents[2] / "bench" / "cv_real.py"
CALIBRATE = Path(__file__).parents[2] / "bench" / "calibrate_patterns.py"


@pytest.fixture(scope="module")
def real_lots(tmp_path_factory, wm811k_npz):
    """Every fourth lot of the real dev wafers (whole lots, both folds), as an npz file.

    A quarter keeps the scripts' figures checkable against the app's predictions in a
    fraction of the time the 1,409 wafers take on a slow CI machine.
    """
    maps = read_npz(wm811k_npz)
    keep = set(sorted({m.lot for m in maps})[::4])
    path = tmp_path_factory.mktemp("real") / "lots.npz"
    write_npz([m for m in maps if m.lot in keep], path)
    return path


def _run(script: Path, folder: Path, npz: Path, *more: str) -> subprocess.CompletedProcess:
    """A bench script on the fold models in ``folder``, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(script), str(folder), "--npz", str(npz), *more],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """Three untrained tiny models with different weights; each test copies the ones it needs,
    since calibration rewrites them.

    One is exported (half a minute on a slow machine); the others are that file with every
    convolution's weights scaled by random factors of their own seed: models of different
    weights and so of different scores, which is all the scripts need of them.
    """
    import onnx
    from onnx import numpy_helper

    folder = tmp_path_factory.mktemp("untrained")
    torch.manual_seed(0)
    export_onnx(create_model("resnet18-w0.25").eval(), folder / "seed0.onnx")
    for seed in (1, 7):
        proto = onnx.load(str(folder / "seed0.onnx"))
        rng = np.random.default_rng(seed)
        for init in proto.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.ndim == 4 and w.dtype == np.float32:
                scaled = w * rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(scaled, init.name))
        onnx.save(proto, str(folder / f"seed{seed}.onnx"))
    return folder


def _folds(folder: Path, untrained: Path) -> None:
    for k in range(2):
        shutil.copyfile(untrained / f"seed{k}.onnx", folder / f"fold{k}.onnx")


def test_cross_validation_scores_each_exported_fold_on_its_own_lots(tmp_path, real_lots, untrained):
    _folds(tmp_path, untrained)
    proc = _run(CV, tmp_path, real_lots)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    maps = read_npz(real_lots)
    held = [[m for m in maps if lot_fold(m.lot, 2) == k] for k in range(2)]
    assert [report["folds"][f"fold{k}"]["wafers"] for k in range(2)] == [len(h) for h in held]
    assert all(held) and sum(len(h) for h in held) == len(maps) > 300
    # Fold 1's figure is its own model on its own lots, as the app would predict them.
    from waferseg_core.metrics import wafer_report

    guess = [p.pattern for p in Predictor(tmp_path / "fold1.onnx").predict(held[1])]
    truth = [m.extra["label"] for m in held[1]]
    want = wafer_report(truth, guess)["macro_f1"]
    assert report["folds"]["fold1"]["macro_f1"] == want
    assert 0.0 <= report["pooled"]["macro_f1"] <= 1.0


def test_calibration_gives_each_fold_the_offsets_of_the_other_folds_wafers(
    tmp_path, real_lots, untrained
):
    import onnx

    from waferseg_core.decision import OFFSETS_KEY, Scored, tune_offsets

    _folds(tmp_path, untrained)
    shipped = tmp_path / "shipped.onnx"
    shutil.copyfile(untrained / "seed7.onnx", shipped)
    proc = _run(CALIBRATE, tmp_path, real_lots, "--write", str(shipped))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    maps = read_npz(real_lots)
    scored = []
    for k in range(2):
        held = [m for m in maps if lot_fold(m.lot, 2) == k]
        preds = Predictor(tmp_path / f"fold{k}.onnx").predict(held)
        truth = [m.extra["label"] for m in held]
        scored.append(
            Scored.of(truth, [p.class_dies for p in preds], [p.wafer_probs for p in preds])
        )

    def carried(path: Path) -> dict:
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return json.loads(meta[OFFSETS_KEY])

    for k in range(2):
        # Tuned on the other fold's out-of-fold wafers only, and carried by fold k's file.
        want, _ = tune_offsets(scored[1 - k])
        fold = report["folds"][f"fold{k}"]
        assert fold["offsets"] == want == carried(tmp_path / f"fold{k}.onnx")
        assert fold["calibrated_macro_f1"] == round(scored[k].macro_f1(want), 4)
        assert Predictor(tmp_path / f"fold{k}.onnx").offsets == want
    assert report["shipped"]["offsets"] == tune_offsets(Scored.join(scored))[0] == carried(shipped)
    # cv_real on the calibrated folds reports the cross-fitted figure.
    proc = _run(CV, tmp_path, real_lots)
    assert (
        json.loads(proc.stdout)["pooled"]["macro_f1"] == report["pooled"]["cross_fitted_macro_f1"]
    )


def test_calibration_refuses_a_missing_fold_and_writes_nothing(tmp_path, real_lots, untrained):
    shutil.copyfile(untrained / "seed0.onnx", tmp_path / "fold0.onnx")
    before = (tmp_path / "fold0.onnx").read_bytes()
    proc = _run(CALIBRATE, tmp_path, real_lots)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"error: expected the fold models and --write models, found no {tmp_path / 'fold1.onnx'}"
    ]
    assert (tmp_path / "fold0.onnx").read_bytes() == before
