"""Stacked lot maps (waferseg_core/stacking.py), against shares counted by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import examples
from waferseg_core.errors import InvalidInputError
from waferseg_core.stacking import stack

# Three 2 x 3 wafers (0 no die, 1 pass, 2 fail) and the odd one out, of another shape.
A = np.array([[0, 1, 2], [1, 2, 2]], np.uint8)
B = np.array([[0, 2, 2], [1, 1, 2]], np.uint8)
C = np.array([[1, 1, 1], [1, 2, 2]], np.uint8)
ODD = np.ones((3, 3), np.uint8)


def test_fail_shares_by_hand():
    s = stack([A, ODD, B, C])
    assert (s.shape, s.wafers, s.left_out) == ((2, 3), 3, 1)
    assert s.present.tolist() == [[1, 3, 3], [3, 3, 3]]
    # (0,0): only C has a die there and it passes; (0,1): B fails of 3; (0,2): A, B of 3;
    # (1,0): none of 3; (1,1): A and C; (1,2): all three.
    want = [[0, 1 / 3, 2 / 3], [0, 2 / 3, 1]]
    assert np.allclose(s.fail_share, want) and s.class_share is None


def test_class_shares_count_only_dies_on_the_wafer():
    masks = [np.full((2, 3), 5), np.zeros((3, 3)), np.array([[5, 5, 0], [0, 0, 8]]), None]
    masks[3] = np.array([[8, 0, 0], [0, 0, 0]])
    s = stack([A, ODD, B, C], masks)
    # Loc (5): A everywhere it has dies (its (0,0) has none), B at (0,1) (its (0,0) has none).
    assert np.allclose(s.share(5), [[0, 2 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]])
    assert np.allclose(s.share(8), [[1, 0, 0], [0, 0, 1 / 3]])
    assert s.share(None) is s.fail_share


def test_a_position_no_wafer_has_is_nan_not_zero():
    s = stack([A, B])
    assert np.isnan(s.fail_share[0, 0]) and s.present[0, 0] == 0


def test_ties_between_shapes_go_to_the_first_seen():
    assert stack([ODD, A]).shape == (3, 3) and stack([A, ODD]).shape == (2, 3)


def test_bad_input_is_refused_in_one_line():
    cases = [
        (lambda: stack([]), "expected at least one wafer to stack, found none"),
        (lambda: stack([A, B], [A]), "expected a mask per wafer (2), found 1"),
        (lambda: stack([A], [ODD]), "wafer 0: expected its mask of shape (2, 3), found (3, 3)"),
        (lambda: stack([A]).share(3), "this stack was made without masks"),
        (lambda: stack([A], [A]).share(0), "class id must be within 1-8, found 0"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError) as err:
            call()
        assert message in str(err.value) and "\n" not in str(err.value)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8), st.integers(1, 6))
def test_shares_are_fractions_where_a_die_is_and_nan_elsewhere(seeds, side):
    rng = [np.random.default_rng(s) for s in seeds]
    grids = [r.integers(0, 3, (side, side + 1)).astype(np.uint8) for r in rng]
    masks = [r.integers(0, 9, g.shape) for r, g in zip(rng, grids, strict=True)]
    s = stack(grids, masks)
    on = s.present > 0
    assert np.all(np.isnan(s.fail_share[~on])) and np.all(np.isfinite(s.fail_share[on]))
    assert np.all((s.fail_share[on] >= 0) & (s.fail_share[on] <= 1))
    # Per position, the classes' shares and the background's add up to one.
    background = sum((g > 0) & (m == 0) for g, m in zip(grids, masks, strict=True))
    total = sum(s.share(c) for c in range(1, 9)) + background / np.where(on, s.present, 1)
    assert np.allclose(total[on], 1.0)
