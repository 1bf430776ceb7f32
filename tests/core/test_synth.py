import numpy as np
import pytest

from waferseg_core.classes import by_name
from waferseg_core.errors import InvalidInputError
from waferseg_core.patterns import pattern_from_mask, patterns_from_mask
from waferseg_core.synth import MIXABLE, SINGLE_LABELS, first_sized, generate, generate_wafer


def test_same_seed_same_wafer_and_different_seed_differs():
    a, b = generate_wafer(3, 17), generate_wafer(3, 17)
    assert np.array_equal(a.wafer.grid, b.wafer.grid) and np.array_equal(a.mask, b.mask)
    c = generate_wafer(4, 17)
    assert c.wafer.shape != a.wafer.shape or not np.array_equal(c.wafer.grid, a.wafer.grid)


def test_a_wafer_depends_only_on_seed_and_index():
    late = list(generate(3, 9, start=5))
    assert np.array_equal(late[0].wafer.grid, generate_wafer(9, 5).wafer.grid)


@pytest.fixture(scope="module")
def sample():
    return list(generate(400, 11, mixed=0.25))


def test_every_label_appears_and_is_recoverable_from_the_mask(sample):
    seen = set()
    for sw in sample:
        found = patterns_from_mask(sw.mask, sw.wafer.grid)
        # Every drawn pattern is present in the mask (redrawn until big enough)...
        assert set(found) == set(sw.patterns), (sw.patterns, found)
        seen.update(found or ["none"])
    assert seen == set(SINGLE_LABELS)


def test_masks_cover_wafer_dies_only_and_background_fails_exist(sample):
    background_fails = 0
    for sw in sample:
        grid, mask = sw.wafer.grid, sw.mask
        assert mask.shape == grid.shape and mask.dtype == np.uint8
        assert not mask[grid == 0].any()
        background_fails += int(((grid == 2) & (mask == 0)).sum())
        # A pattern's region holds pass dies too: it is the outline, not the fail dies.
        for name in sw.patterns:
            region = mask == by_name(name).id
            if region.sum() > 30 and name not in ("Near-full",):
                assert (grid[region] == 1).any()
    assert background_fails > 1000


def test_mixed_wafers_carry_two_to_four_compatible_patterns(sample):
    mixed = [sw for sw in sample if len(sw.patterns) > 1]
    assert len(mixed) > 40
    for sw in mixed:
        assert 2 <= len(sw.patterns) <= 4
        assert set(sw.patterns) <= set(MIXABLE)
        assert not {"Center", "Donut"} <= set(sw.patterns)


def test_layouts_span_the_size_range_and_are_round():
    shapes = [generate_wafer(5, i).wafer.shape for i in range(300)]
    cols = [c for _, c in shapes]
    assert min(cols) <= 26 and max(cols) >= 150
    assert all(18 <= r <= 302 and 18 <= c <= 302 for r, c in shapes)
    grid = generate_wafer(5, 0).wafer.grid
    assert grid[0, 0] == 0 and grid[-1, -1] == 0  # corners are off a round wafer
    assert (grid[grid.shape[0] // 2] > 0).any()


def test_none_wafers_have_empty_masks():
    nones = [sw for sw in generate(200, 2) if not sw.patterns]
    assert nones
    for sw in nones:
        assert pattern_from_mask(sw.mask, sw.wafer.grid) == "none"


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="mixed"):
        generate_wafer(1, 1, mixed=1.5)
    with pytest.raises(InvalidInputError, match="count"):
        list(generate(-1, 1))


def test_first_sized_picks_the_first_wafer_of_the_size_or_says_none_fits():
    sw = first_sized(5, over=100)
    sides = [max(generate_wafer(5, i).wafer.shape) for i in range(200)]
    first = next(i for i, side in enumerate(sides) if side > 100)
    assert sw.wafer.extra["synth_index"] == first and max(sw.wafer.shape) == sides[first]
    small = first_sized(5, up_to=40)
    assert max(small.wafer.shape) <= 40
    with pytest.raises(
        InvalidInputError, match="over 10 and at most 11 dies across among the first 3"
    ):
        first_sized(5, over=10, up_to=11, limit=3)
