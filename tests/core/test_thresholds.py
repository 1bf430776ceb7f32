"""Per-class pseudo-label thresholds (FlexMatch): what they learn from a batch, in training."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_ml import TINY, small_samples
from waferseg_core.ml.data import Sample
from waferseg_core.ml.thresholds import ClassThresholds
from waferseg_core.ml.train import TrainConfig, train


def test_base_until_the_first_batch_then_lower_for_the_class_still_learned():
    t = ClassThresholds(0.95, 3, floor=0.0)
    assert t.values().tolist() == [0.95, 0.95, 0.95]
    # Class 0: every prediction confident; class 1: a quarter; class 2: never predicted.
    conf = np.array([0.99, 0.99, 0.99, 0.99, 0.96, 0.5, 0.6, 0.7])
    label = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    t.update(conf, label)
    v = t.values()
    beta = 0.25  # class 1's confident share over class 0's
    assert v[0] == pytest.approx(0.95)
    assert v[1] == pytest.approx(0.95 * beta / (2 - beta))
    assert v[2] == pytest.approx(0.95)  # nothing known about it: the base bar
    assert t.of(np.array([[1, 0]])).tolist() == [[v[1], v[0]]]


def test_floor_and_moving_average():
    t = ClassThresholds(0.9, 2, momentum=0.5, floor=0.5)
    t.update(np.array([0.95, 0.1]), np.array([0, 1]))
    assert t.values().tolist() == [0.9, 0.5]  # class 1 never confident: down to the floor
    t.update(np.array([0.95, 0.95]), np.array([0, 1]))
    # Class 1's confident share is now 0.5 of its (averaged) predictions, class 0's is 1.
    assert t.values()[1] == pytest.approx(max(0.5, 0.9 * 0.5 / 1.5))
    with pytest.raises(ValueError, match="expected 0 <= floor <= base <= 1"):
        ClassThresholds(0.5, 2, floor=0.6)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8)), min_size=0, max_size=60),
    st.floats(0.05, 1.0),
)
def test_thresholds_stay_between_floor_and_base(dies, base):
    t = ClassThresholds(base, 9, floor=base / 2)
    conf = np.array([c for c, _ in dies], dtype=float)
    label = np.array([k for _, k in dies], dtype=np.int64)
    t.update(conf, label)
    v = t.values()
    assert np.all(v >= base / 2 - 1e-12) and np.all(v <= base + 1e-12)


def test_training_with_class_thresholds_reports_them(tmp_path):
    labelled = small_samples(16)
    unlabelled = [Sample(s.grid, None, np.zeros_like(s.labels)) for s in small_samples(16, seed=5)]
    cfg = TrainConfig(
        arch=TINY,
        epochs=2,
        batch_size=8,
        device="cpu",
        fixmatch=True,
        class_thresholds=True,
        fixmatch_start=0,
    )
    rows = list(train(cfg, labelled, labelled[:4], tmp_path, unlabeled=unlabelled))
    for r in rows:
        assert len(r["class_thresholds"]) == 9
        assert all(0.5 <= v <= 0.95 for v in r["class_thresholds"])
    # With one fixed bar the same run reports no per-class thresholds.
    fixed = TrainConfig(arch=TINY, epochs=1, batch_size=8, device="cpu", fixmatch=True)
    (row,) = train(fixed, labelled, [], tmp_path / "f", unlabeled=unlabelled, resume=False)
    assert "class_thresholds" not in row
