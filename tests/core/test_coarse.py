"""Large wafers at a coarser die scale: the reduction, its masks, and inference through it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from waferseg_core.classes import by_name
from waferseg_core.coarse import (
    MAX_SIDE,
    RAMP,
    check_phases,
    coarsen,
    coarsen_mask,
    constants,
    factor,
    interpolate,
    phase_shifts,
    shifted,
    spread,
    thresholds,
    view,
)
from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Predictor
from waferseg_core.metrics import Confusion
from waferseg_core.ml.data import Sample
from waferseg_core.modelio import encode, padded_size
from waferseg_core.synth import first_sized, generate_wafer
from waferseg_core.wafer import WaferMap


def test_factor_brings_the_longest_side_within_max_side():
    assert factor((MAX_SIDE, 10)) == 1
    assert factor((10, MAX_SIDE + 1)) == 2
    assert factor((300, 250)) == 4 and MAX_SIDE >= 300 / 4


def test_view_and_constants():
    grid = np.ones((300, 10), np.uint8)
    small, k = view(grid)
    assert k == 4 and small.shape == (75, 3)
    assert view(np.ones((5, 5), np.uint8))[1] == 1
    with constants(max_side=0):  # every wafer at full scale
        assert view(grid)[0] is grid
    two = np.array([[2, 1, 1, 1]], np.uint8)  # a quarter of the block fails
    with constants(ramp=(0.25, 0.25)):
        assert coarsen(two, 4).tolist() == [[2]]
    assert coarsen(two, 4).tolist() == [[1]] and factor(grid.shape) == 4  # restored
    with (
        pytest.raises(ValueError, match="expected a ramp 0 <= low <= high <= 1, found"),
        constants(ramp=(0.8, 0.2)),
    ):
        pass


def test_thresholds_are_fixed_per_position_and_even():
    t = thresholds((300, 300))
    assert np.array_equal(thresholds((7, 9)), t[:7, :9])  # a cell's value whatever the size
    assert t.min() > 0.0 and t.max() < 1.0
    assert np.histogram(t, bins=10, range=(0, 1))[0].min() > 0.95 * t.size / 10
    # Neighbours independent: a ramp cell fails apart from the cell beside it.
    assert abs(np.corrcoef(t[:, :-1].ravel(), t[:, 1:].ravel())[0, 1]) < 0.02


def test_the_ramp_keeps_the_fail_density_between_its_ends():
    rng = np.random.default_rng(5)
    low, high = 0.25, 0.75
    for density in (0.1, 0.35, 0.5, 0.65, 0.9):
        # Every 3 x 3 block fails exactly round(9 * density) of its dies, at random places.
        n = round(9 * density)
        blocks = np.array([rng.permutation([2] * n + [1] * (9 - n)) for _ in range(120 * 120)])
        grid = blocks.reshape(120, 120, 3, 3).transpose(0, 2, 1, 3).reshape(360, 360)
        with constants(ramp=(low, high)):
            failing = (coarsen(grid.astype(np.uint8), 3) == 2).mean()
        share = n / 9
        expected = min(1.0, max(0.0, (share - low) / (high - low)))
        assert abs(failing - expected) < 0.02, (density, failing, expected)


def test_coarsen_by_hand():
    grid = np.array(
        [
            [2, 1, 2, 2, 0, 0],
            [1, 1, 1, 1, 0, 2],
        ],
        np.uint8,
    )
    # One threshold of 40%, blocks of 2: one fail in four (25%) passes, two in four fail, a
    # lone fail die on the wafer's edge makes its block a failing wafer cell; a block with no
    # die is no die.
    with constants(ramp=(0.4, 0.4)):
        assert coarsen(grid, 2).tolist() == [[1, 2, 2]]
    assert coarsen(np.zeros((2, 2), np.uint8), 2).tolist() == [[0]]
    assert coarsen(grid, 1) is grid


def test_coarsen_mask_takes_the_commonest_class_and_priority_on_ties():
    scratch, loc, ring = (by_name(n).id for n in ("Scratch", "Loc", "Edge-Ring"))
    grid = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.uint8)
    mask = np.array([[scratch, loc, ring, ring], [0, 0, 0, 0]], np.uint8)
    # Left block: Scratch, Loc, two background -> background (2 of 4). Right block: its two dies
    # on the wafer are Edge-Ring (the off-wafer ones do not vote).
    assert coarsen_mask(mask, grid, 2).tolist() == [[0, ring]]
    tie = np.array([[scratch, loc], [scratch, loc]], np.uint8)
    assert coarsen_mask(tie, np.ones((2, 2), np.uint8), 2).tolist() == [[scratch]]


def test_spread_gives_every_die_its_block():
    a = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    out = spread(a, 2, (3, 5))
    assert out.shape == (1, 3, 5)
    assert out[0].tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]]


def test_interpolate_is_bilinear_between_cell_centres_over_wafer_cells_only():
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4)  # value = 4 * row + col per cell
    on = np.ones((3, 4), bool)
    assert np.array_equal(interpolate(a, 1, (3, 4), on), a)
    out = interpolate(a, 2, (6, 8), on)[0]
    # Cell c's centre is die 2c + 0.5: dies 1 and 2 lie a quarter either side of it and the
    # next centre; dies beyond the outer centres take the outer cells' values.
    assert out[0].tolist() == [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
    assert out[:, 0].tolist() == [0.0, 1.0, 3.0, 5.0, 7.0, 8.0]
    const = np.full((9, 3, 4), 0.5, np.float32)
    assert np.allclose(interpolate(const, 3, (9, 12), on), 0.5)  # 9 classes, a flat field
    # An off-wafer cell's scores never reach a die of an on-wafer cell (the only dies that
    # count: a die on the wafer makes its cell on); a die with no wafer cell around it keeps
    # its own block's.
    junk = a.copy()
    junk[0, 0, 3] = 1e6
    off = on.copy()
    off[0, 3] = False
    got = interpolate(junk, 2, (6, 8), off)[0]
    block_on = np.repeat(np.repeat(off, 2, axis=0), 2, axis=1)
    assert got[block_on].max() < 12 and got[0, 5] == 2.0  # row 0, past cell 2: cell 2 alone
    lone = np.zeros((3, 4), bool)
    lone[2, 0] = True
    got = interpolate(junk, 2, (6, 8), lone)[0]
    assert got[0, 7] == 1e6 and got[5, 0] == 8.0


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 2)),
    st.integers(2, 5),
    st.integers(0, 2**31 - 1),
)
def test_interpolated_scores_stay_within_the_wafer_cells_around_each_die(grid, k, seed):
    # Whatever the wafer: a die of the wafer gets a convex mix of on-wafer cells' scores, so
    # never more or less than they hold, and a class that wins in all of them wins at the die.
    small = coarsen(grid, k)
    on = small > 0
    scores = np.random.default_rng(seed).normal(size=(3, *small.shape)).astype(np.float32)
    scores[:, ~on] = 1e6  # off-wafer cells must never show through
    out = interpolate(scores, k, grid.shape, on)
    assert out.shape == (3, *grid.shape) and np.isfinite(out).all()
    dies = grid > 0
    if on.any():
        lo, hi = scores[:, on].min(), scores[:, on].max()
        assert (out[:, dies] >= lo - 1e-4).all() and (out[:, dies] <= hi + 1e-4).all()
    scores[0, on] = scores[1:, on].max(0) + 1.0  # class 0 first in every wafer cell
    assert (interpolate(scores, k, grid.shape, on).argmax(0)[dies] == 0).all()


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 2))
)
def test_coarsen_keeps_every_die_on_a_wafer_cell(grid):
    for k in (2, 3, 5):
        small = coarsen(grid, k)
        assert small.shape == (-(-grid.shape[0] // k), -(-grid.shape[1] // k))
        assert set(np.unique(small)) <= {0, 1, 2}
        cell = spread(small, k, grid.shape)
        assert (cell[grid > 0] > 0).all()  # every die on the wafer sits on a wafer cell
        for r in range(small.shape[0]):
            for c in range(small.shape[1]):
                block = grid[r * k : (r + 1) * k, c * k : (c + 1) * k]
                dies = block[block > 0]
                assert (small[r, c] > 0) == (dies.size > 0)  # on only when a die is
                if dies.size and (dies == 2).all():
                    assert small[r, c] == 2
                if dies.size and not (dies == 2).any():
                    assert small[r, c] == 1
                share = (dies == 2).mean() if dies.size else 0.0
                if dies.size and share < RAMP[0]:
                    assert small[r, c] == 1  # below the ramp: never fails
                if dies.size and share >= RAMP[1]:
                    assert small[r, c] == 2  # at its top: always


def test_large_wafers_predict_through_their_coarse_grid():
    big = first_sized(5, over=200, limit=400).wafer
    k = factor(big.grid.shape)
    assert k >= 3
    pred = Predictor()
    (got,) = pred.predict([big])
    small = WaferMap(grid=coarsen(big.grid, k), lot="L", wafer_id="1")
    # The model's scores on the coarse grid, interpolated to the dies, decide every die.
    size = (padded_size(small.rows), padded_size(small.cols))
    seg = pred.raw(encode(small.grid, size)[None])[0][0, :, : small.rows, : small.cols]
    want = interpolate(seg, k, big.grid.shape, small.grid > 0).argmax(0)
    on = big.grid > 0
    assert got.mask.shape == big.grid.shape
    assert np.array_equal(got.mask[on], want[on])
    (ref,) = pred.predict([small])  # most dies keep their block's class
    assert (got.mask[on] == spread(ref.mask, k, big.grid.shape)[on]).mean() > 0.9
    # A training sample of the same wafer is what inference sees.
    sw = generate_wafer(5, 0)
    s = Sample(big.grid, np.zeros_like(big.grid), np.zeros(9, np.float32))
    assert s.grid.shape == small.grid.shape and s.mask is not None and s.mask.shape == s.grid.shape
    assert s.scale == k
    plain = Sample(sw.wafer.grid, sw.mask, np.zeros(9, np.float32))
    assert plain.grid is sw.wafer.grid and plain.scale == 1


def test_phase_shifts_move_the_block_grid_by_half_a_block():
    assert phase_shifts(1, 4) == [(0, 0)]  # a wafer seen as it is has one grid
    assert phase_shifts(2, 4) == [(0, 0), (1, 1), (1, 0), (0, 1)]
    assert phase_shifts(3, 2) == [(0, 0), (1, 1)]
    assert phase_shifts(4, 1) == [(0, 0)]
    with pytest.raises(
        InvalidInputError, match=r"expected a number of phases in \[1, 2, 4\], found 3"
    ):
        check_phases(3)
    g = np.array([[1, 2], [2, 1]], np.uint8)
    moved = shifted(g, (2, 1))
    assert moved.shape == (4, 3) and not moved[:2].any() and not moved[:, :1].any()
    assert np.array_equal(moved[2:, 1:], g)


def _probs(pred, grid, k, shift):
    """Class probabilities at the dies from the block grid of ``grid`` moved by ``shift``."""
    moved = shifted(grid, shift)
    small = coarsen(moved, k)
    size = (padded_size(small.shape[0]), padded_size(small.shape[1]))
    seg = pred.raw(encode(small, size)[None])[0][0, :, : small.shape[0], : small.shape[1]]
    z = interpolate(seg, k, moved.shape, small > 0)[:, shift[0] :, shift[1] :].astype(np.float64)
    e = np.exp(z - z.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def test_phases_average_the_moved_block_grids_of_large_wafers_only():
    big = next(
        sw.wafer
        for sw in (generate_wafer(5, i) for i in range(400))
        if factor(sw.mask.shape) > 1 and sw.patterns in {("Donut",), ("Loc",), ("Scratch",)}
    )
    k = factor(big.grid.shape)
    plain = Predictor(cache_size=1)
    mean = sum(_probs(plain, big.grid, k, s) for s in phase_shifts(k, 2)) / 2
    (got,) = Predictor(cache_size=1, phases=2).predict([big])
    on = big.grid > 0
    assert np.array_equal(got.mask[on], mean.argmax(0)[on])
    assert np.allclose(got.probability[on], mean.max(0)[on], atol=1e-5)
    (one,) = plain.predict([big])
    assert np.array_equal(got.embedding, one.embedding)  # the plain grid's
    assert (got.mask[on] != one.mask[on]).any()  # the phases changed some outline dies
    small = first_sized(5, up_to=96, limit=50).wafer
    (a,), (b,) = plain.predict([small]), Predictor(phases=4).predict([small])
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.probability, b.probability)


def test_four_phases_outline_large_wafers_closer_to_the_truth():
    # Synthetic wafers over 96 dies across (seed 21, not the model card's test seed).
    wafers = [w for w in (generate_wafer(21, i) for i in range(120)) if factor(w.mask.shape) > 1]
    assert len(wafers) >= 12
    scores = []
    for phases in (1, 4):
        conf = Confusion()
        preds = Predictor(phases=phases).predict([w.wafer for w in wafers])
        for w, p in zip(wafers, preds, strict=True):
            conf.add(w.mask, p.mask, w.wafer.grid > 0)
        scores.append(float(np.nanmean(conf.iou()[1:])))  # the report's mean IoU
    assert scores[1] > scores[0] + 0.005, scores
