"""The measures of bench/call_confidence.py: how well a score ranks the wrong calls first."""

import numpy as np
import pytest

from tests.bench_module import load

cc = load("call_confidence")


def test_auroc_counts_right_calls_scored_above_wrong_ones():
    right = np.array([True, True, False, False])
    assert cc.auroc(np.array([0.9, 0.8, 0.2, 0.1]), right) == 1.0
    assert cc.auroc(np.array([0.1, 0.2, 0.8, 0.9]), right) == 0.0
    assert cc.auroc(np.full(4, 0.5), right) == 0.5  # ties count half
    # One right call (0.3) below one wrong call (0.4): 3 of 4 pairs in order.
    assert cc.auroc(np.array([0.9, 0.3, 0.4, 0.1]), right) == 0.75
    with pytest.raises(ValueError, match="only one kind"):
        cc.auroc(np.array([0.1, 0.2]), np.array([True, True]))


def test_wrong_among_lowest_looks_at_the_least_sure_tenth():
    score = np.arange(20, dtype=float)  # wafers 0 and 1 are the least sure tenth
    right = np.ones(20, bool)
    right[[0, 15]] = False
    assert cc.wrong_among_lowest(score, right) == 0.5
