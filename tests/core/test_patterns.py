import numpy as np
import pytest

from waferseg_core.errors import InvalidInputError
from waferseg_core.patterns import class_die_counts, pattern_from_mask, patterns_from_mask


def test_thresholds_and_order():
    grid = np.ones((20, 20), np.uint8)  # 400 dies: need max(3, 2) = 3 dies
    mask = np.zeros((20, 20), np.uint8)
    mask[0, :2] = 8  # 2 dies: not enough
    assert pattern_from_mask(mask, grid) == "none"
    mask[0, :5] = 8
    mask[5:10, 5:10] = 1
    assert patterns_from_mask(mask, grid) == ["Center", "Scratch"]
    assert class_die_counts(mask, grid)[8] == 5


def test_off_wafer_dies_do_not_count():
    grid = np.zeros((4, 4), np.uint8)
    grid[0] = 1
    mask = np.full((4, 4), 5, np.uint8)
    assert class_die_counts(mask, grid)[5] == 4


def test_shape_mismatch():
    with pytest.raises(InvalidInputError, match="differs"):
        class_die_counts(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8))
