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


def _fixmatch(**kw) -> TrainConfig:
    """A tiny FixMatch run's config; every pseudo-label counts unless ``threshold`` is given."""
    return TrainConfig(
        arch=TINY, batch_size=8, device="cpu", fixmatch=True, **{"threshold": 0.0, **kw}
    )


def _data() -> tuple[list[Sample], list[Sample]]:
    labelled = small_samples(16)
    unlabelled = [Sample(s.grid, None, np.zeros_like(s.labels)) for s in small_samples(16, seed=5)]
    return labelled, unlabelled


def test_training_with_fixmatch_reports_the_unlabelled_loss(tmp_path):
    labelled, unlabelled = _data()
    cfg = _fixmatch(epochs=2, ramp_epochs=2)
    rows = list(train(cfg, labelled, labelled[:4], tmp_path, unlabeled=unlabelled))
    assert [r["unlabeled_weight"] for r in rows] == [0.5, 1.0]  # ramped
    assert all(r["pseudo_kept"] > 0.5 and r["unlabeled_loss"] > 0 for r in rows)
    # A threshold nobody reaches keeps no die: the unlabelled loss is zero, nothing breaks.
    cfg2 = _fixmatch(epochs=1, threshold=1.0)
    (row,) = train(cfg2, labelled, labelled[:4], tmp_path / "b", unlabeled=unlabelled)
    assert row["pseudo_kept"] == 0.0 and row["unlabeled_loss"] == 0.0
    # A supervised-only first epoch: no unlabelled figures until FixMatch starts, then it ramps.
    cfg4 = _fixmatch(epochs=2, ramp_epochs=2, fixmatch_start=1)
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
    assert "threshold (--threshold) must be within (0, 1], found 0.0" in capsys.readouterr().err
    assert main([*argv, "--unlabeled", str(folder), "--teacher-ema", "1"]) == 2
    assert "teacher_ema (--teacher-ema) must be within [0, 1), found 1.0" in capsys.readouterr().err
    assert main([*argv, "--unlabeled", str(folder), "--teacher-ema", "0.99"]) == 0


def test_without_validation_wafers_the_best_epoch_has_the_lowest_supervised_loss(tmp_path):
    import torch

    labelled, unlabelled = _data()
    # A heavy unlabelled term from the second epoch on: the total loss jumps above the first
    # epoch's, which the old rule (lowest total loss) kept as "best".
    cfg = _fixmatch(epochs=4, unlabeled_weight=20.0, ramp_epochs=1, fixmatch_start=1)
    rows = list(train(cfg, labelled, [], tmp_path, unlabeled=unlabelled))
    assert rows[0]["loss"] < min(r["loss"] for r in rows[1:])
    sup = [r["supervised_loss"] for r in rows]
    assert all(abs(r["score"] + r["supervised_loss"]) < 1e-4 for r in rows)
    best = int(torch.load(tmp_path / "best.pt", weights_only=True)["epoch"])
    assert best == int(np.argmin(sup)) != 0


def test_an_averaged_teacher_labels_for_fixmatch_and_follows_the_student(tmp_path):
    from waferseg_core.ml.model import create_model
    from waferseg_core.ml.train import _follow, _teacher

    torch_model = create_model(TINY)
    teacher = _teacher(torch_model)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    before = [p.clone() for p in teacher.parameters()]
    for p in torch_model.parameters():
        p.data.add_(1.0)
    _follow(teacher, torch_model, 0.9)
    for b, t, s in zip(before, teacher.parameters(), torch_model.parameters(), strict=True):
        assert np.allclose(t.numpy(), (0.9 * b + 0.1 * s.detach()).numpy(), atol=1e-6)
    # A run with the teacher trains, keeps pseudo-labels, and differs from one without it.
    labelled, unlabelled = _data()
    rows = {}
    for ema in (0.0, 0.5):
        cfg = _fixmatch(epochs=2, ramp_epochs=1, fixmatch_start=1, teacher_ema=ema)
        rows[ema] = list(train(cfg, labelled, [], tmp_path / str(ema), unlabeled=unlabelled))
        assert rows[ema][1]["pseudo_kept"] > 0.5
    assert rows[0.0][0]["loss"] == rows[0.5][0]["loss"]  # the same supervised first epoch
    assert rows[0.0][1]["unlabeled_loss"] != rows[0.5][1]["unlabeled_loss"]
