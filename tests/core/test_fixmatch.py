"""FixMatch: aligned weak/strong views, the unlabelled loss in training, the CLI option."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_ml import TINY, small_samples
from waferseg_core.cli import main
from waferseg_core.formats.png import png_bytes
from waferseg_core.ml.data import FixMatchViews, Sample
from waferseg_core.ml.train import TrainConfig, train
from waferseg_core.synth import generate_wafer


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 300))
def test_strong_view_keeps_labels_on_their_dies(seed, index):
    # No die noise here: it flips a die's pass/fail under its (unchanged) pattern label.
    views = FixMatchViews(seed, dropout=0.0)
    grid = generate_wafer(4, index).wafer.grid
    weak = views.weak(grid)
    assert sorted(weak.shape) == sorted(grid.shape)
    assert (
        np.bincount(weak.ravel(), minlength=3).tolist()
        == np.bincount(grid.ravel(), minlength=3).tolist()
    )  # a flip or rotation moves dies, never changes them
    # Label every die with its own state: after the joint warp, a kept die's label must still
    # equal the state of the die it sits on.
    g, lab, keep = views.strong(weak, weak.copy(), weak > 0)
    assert g.shape == lab.shape == keep.shape
    assert not keep[g == 0].any()
    assert np.array_equal(lab[keep], g[keep])


def test_training_with_fixmatch_reports_the_unlabelled_loss(tmp_path):
    labelled = small_samples(16)
    unlabelled = [Sample(s.grid, None, np.zeros_like(s.labels)) for s in small_samples(16, seed=5)]
    cfg = TrainConfig(
        arch=TINY, epochs=2, batch_size=8, device="cpu", fixmatch=True, threshold=0.0, ramp_epochs=2
    )
    rows = list(train(cfg, labelled, labelled[:4], tmp_path, unlabeled=unlabelled))
    assert [r["unlabeled_weight"] for r in rows] == [0.5, 1.0]  # ramped
    assert all(r["pseudo_kept"] > 0.5 and r["unlabeled_loss"] > 0 for r in rows)
    # A threshold nobody reaches keeps no die: the unlabelled loss is zero, nothing breaks.
    cfg2 = TrainConfig(
        arch=TINY, epochs=1, batch_size=8, device="cpu", fixmatch=True, threshold=1.0
    )
    (row,) = train(cfg2, labelled, labelled[:4], tmp_path / "b", unlabeled=unlabelled)
    assert row["pseudo_kept"] == 0.0 and row["unlabeled_loss"] == 0.0
    # A supervised-only first epoch: no unlabelled figures until FixMatch starts, then it ramps.
    cfg4 = TrainConfig(
        arch=TINY,
        epochs=2,
        batch_size=8,
        device="cpu",
        fixmatch=True,
        threshold=0.0,
        ramp_epochs=2,
        fixmatch_start=1,
    )
    first, second = train(cfg4, labelled, labelled[:4], tmp_path / "s", unlabeled=unlabelled)
    assert "unlabeled_loss" not in first and second["unlabeled_weight"] == 0.5
    # Without fixmatch, no unlabelled figures.
    (plain,) = train(
        TrainConfig(arch=TINY, epochs=1, batch_size=8, device="cpu"), labelled, [], tmp_path / "c"
    )
    assert "unlabeled_loss" not in plain


def test_cli_train_unlabeled(tmp_path, capsys):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(6):
        (folder / f"w{i}.png").write_bytes(png_bytes(generate_wafer(8, i).wafer))
    out = tmp_path / "run"
    argv = ["train", "--synth", "30", "--out", str(out), "--arch", TINY, "--epochs", "1"]
    argv += ["--batch-size", "8", "--epoch-size", "8", "--device", "cpu", "--no-export"]
    assert main([*argv, "--unlabeled", str(folder)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[-1]["unlabeled_wafers"] == 6 and "pseudo_kept" in lines[0]
    assert main([*argv, "--unlabeled", str(tmp_path / "none")]) == 2
    assert "expected wafer files" in capsys.readouterr().err
    assert main([*argv, "--unlabeled", str(folder), "--threshold", "0"]) == 2
    assert "--threshold must be within" in capsys.readouterr().err
